//go:build linux

package netrunner

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests check that a Stream gives back what it holds when its use
// ends, never by the garbage collector: none of them calls runtime.GC, and
// descriptors are counted in /proc/self/fd, goroutines with NumGoroutine.

// goroutinesBack waits until no more goroutines run than before.
func goroutinesBack(t *testing.T, before int, what string) {
	t.Helper()
	if !eventually(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%s: %d goroutines, %d before:\n%s", what, runtime.NumGoroutine(), before, buf)
	}
}

// fdsBack checks that the descriptors are back to before, at once: the
// release must have happened by the time Wait (or Stop) returned.
func fdsBack(t *testing.T, before int, what string) {
	t.Helper()
	if n := fdCount(t); n > before {
		t.Errorf("%s: %d descriptors open, %d before;%s", what, n, before, openFDs())
	}
}

// Start, then Wait (or Kill and Wait, or Stop) without ever reading: once
// the process and its group are gone and the pipes are empty, every pipe is
// closed by the time Wait returns.
func TestStreamUnreadReleasedAtWait(t *testing.T) {
	pipeline := func(ctx context.Context) (*Process, error) {
		return Pipeline(Command("true"), Command("cat")).Start(ctx)
	}
	cmd := func(c *Cmd, setup func(*Cmd)) func(context.Context) (*Process, error) {
		if setup != nil {
			setup(c)
		}
		return c.Start
	}
	stderrStream := func(c *Cmd) { c.Stderr = StderrStream }
	pty := func(c *Cmd) { onPTY(c) }
	fast := func(c *Cmd) { c.KillTimeout = 100 * time.Millisecond }
	for _, tc := range []struct {
		name  string
		start func(context.Context) (*Process, error)
		end   func(*Process, context.Context) error
	}{
		{"Wait", cmd(Command("true"), nil), (*Process).Wait},
		{"Kill-Wait", cmd(Command("sleep", "1000"), nil), func(p *Process, ctx context.Context) error {
			p.Kill()
			return p.Wait(ctx)
		}},
		{"Stop", cmd(Command("sleep", "1000"), fast), (*Process).Stop},
		{"StderrStream", cmd(Command("true"), stderrStream), (*Process).Wait},
		{"StderrStream-Kill", cmd(Command("sleep", "1000"), stderrStream), func(p *Process, ctx context.Context) error {
			p.Kill()
			return p.Wait(ctx)
		}},
		{"PTY", cmd(Command("true"), pty), (*Process).Wait},
		{"PTY-Stop", cmd(Command("sleep", "1000"), func(c *Cmd) { pty(c); fast(c) }), (*Process).Stop},
		{"Pipeline", pipeline, (*Process).Wait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			fds, goroutines := fdCount(t), runtime.NumGoroutine()
			p, err := tc.start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reap(t, p) })
			tc.end(p, ctx) // the exit status is not the point
			fdsBack(t, fds, "right after the process ended, its Streams never read")
			goroutinesBack(t, goroutines, "after the process ended")
			// A Stream that ended this way reads as a clean end.
			if b, err := p.Stdout.Next(ctx); len(b) != 0 || err != io.EOF {
				t.Errorf("Next after the end = %q, %v; want io.EOF", b, err)
			}
			if p.Stderr != nil {
				if b, err := p.Stderr.Next(ctx); len(b) != 0 || err != io.EOF {
					t.Errorf("Stderr.Next after the end = %q, %v; want io.EOF", b, err)
				}
			}
			check()
		})
	}
}

// A Stream whose pipe still holds data keeps it, and its descriptor, until
// it is read; reading it to the end releases the descriptor without Close.
func TestStreamUnreadDataKeptUntilRead(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	fds := fdCount(t)
	p := start(t, ctx, Command("echo", "kept"))
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fdCount(t); n != fds+1 {
		t.Errorf("%d descriptors open after Wait, %d before; want the one pipe that holds data;%s", n, fds, openFDs())
	}
	b, err := p.Stdout.Next(ctx)
	if string(b) != "kept\n" || err != nil {
		t.Fatalf("Next after Wait = %q, %v; want the data the pipe kept", b, err)
	}
	// The last of what the pipe held was read: the descriptor goes with it.
	fdsBack(t, fds, "after the pipe was read to its end")
	if b, err := p.Stdout.Next(ctx); len(b) != 0 || err != io.EOF {
		t.Errorf("Next at the end = %q, %v; want io.EOF", b, err)
	}
	check()
}

// Request(1), receive one chunk, Wait: the read-ahead goroutine and the
// descriptor end once the process is gone and the pipe empty, and C closes.
func TestStreamDemandReleasedAtWait(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	fds, goroutines := fdCount(t), runtime.NumGoroutine()
	p := start(t, ctx, sh("echo one; exec sleep 0.2"))
	p.Stdout.Request(1)
	select {
	case b := <-p.Stdout.C():
		if string(b) != "one\n" {
			t.Fatalf("chunk %q; want \"one\\n\"", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no chunk on C 10s after Request(1)")
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	fdsBack(t, fds, "right after Wait, with the read-ahead goroutine idle")
	select {
	case b, ok := <-p.Stdout.C():
		if ok {
			t.Errorf("C delivered %q after the end", b)
		}
	case <-time.After(5 * time.Second):
		t.Error("C still open 5s after the process and its group were gone")
	}
	if err := p.Stdout.Err(); err != nil {
		t.Errorf("Err after a clean end: %v", err)
	}
	goroutinesBack(t, goroutines, "after Wait")
	check()
}

// watchedCtx counts the context.AfterFunc registrations made on it that
// are still live: the context package hands them to its AfterFunc method
// once Value hides the cancelable context underneath.
type watchedCtx struct {
	context.Context
	live atomic.Int64
}

func (*watchedCtx) Value(any) any { return nil }

func (c *watchedCtx) AfterFunc(f func()) func() bool {
	c.live.Add(1)
	stop := context.AfterFunc(c.Context, f)
	var once sync.Once
	return func() bool {
		stopped := stop()
		once.Do(func() { c.live.Add(-1) })
		return stopped
	}
}

// Next once under a long-lived context, then Wait: the Stream's watch of
// that context ends with the Stream, not when the context ends.
func TestStreamContextReleasedAtEnd(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	long := &watchedCtx{Context: base}
	fds, goroutines := fdCount(t), runtime.NumGoroutine()
	p := start(t, ctx, sh("echo one; exec sleep 0.2"))
	if b, err := p.Stdout.Next(long); string(b) != "one\n" || err != nil {
		t.Fatalf("Next = %q, %v", b, err)
	}
	if n := long.live.Load(); n != 1 {
		t.Fatalf("%d watches of the context after Next; want 1", n)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := long.live.Load(); n != 0 {
		t.Errorf("%d watches of the long-lived context left after Wait; want 0", n)
	}
	fdsBack(t, fds, "right after Wait")
	goroutinesBack(t, goroutines, "after Wait")
	check()
}
