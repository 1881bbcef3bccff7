//go:build linux

package netrunner

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Chunks and Lines give no way to read Process.Stderr, so StderrStream is
// refused before anything runs, instead of a child that fills its stderr
// pipe blocking forever.
func TestChunksLinesRefuseStderrStream(t *testing.T) {
	for _, name := range []string{"Chunks", "Lines"} {
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			marker := filepath.Join(t.TempDir(), "ran")
			c := sh("touch " + marker + "; head -c 2000000 /dev/zero >&2; echo out")
			c.Stderr = StderrStream
			seq := c.Chunks
			if name == "Lines" {
				seq = c.Lines
			}
			var errs []error
			var got int
			within(t, 15*time.Second, name+" with StderrStream and 2 MB of stderr", func() {
				for b, err := range seq(testCtx(t)) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					got += len(b)
				}
			})
			if len(errs) != 1 || !errors.Is(errs[0], ErrInvalidCommand) {
				t.Fatalf("%s with StderrStream yielded %d bytes and errors %v; want one ErrInvalidCommand", name, got, errs)
			}
			for _, want := range []string{"netrunner: sh -c 'touch ", "StderrStream", name} {
				if !strings.Contains(errs[0].Error(), want) && !(want == name && strings.Contains(errs[0].Error(), "Chunks or Lines")) {
					t.Errorf("error %q does not mention %s", errs[0], want)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran although it was refused")
			}
			check()
		})
	}
}

// After the context ends, Chunks and Lines yield nothing more from the
// pipe, even with a full 1 MiB pipe behind a slow consumer: the next yield
// is the final error.
func TestChunksLinesStopAtContext(t *testing.T) {
	for _, name := range []string{"Chunks", "Lines"} {
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Large writes, so that the pipe grows to 1 MiB behind the
			// slow consumer.
			c := sh(`yes "$(head -c 1000 /dev/zero | tr '\0' y)" | dd bs=256k iflag=fullblock status=none`)
			seq, every := c.Chunks, 1
			if name == "Lines" {
				seq, every = c.Lines, 64
			}
			var items, before, after int
			var errs []error
			within(t, 20*time.Second, name+" past its context", func() {
				for b, err := range seq(ctx) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					if ctx.Err() != nil {
						after += len(b)
						continue
					}
					before += len(b)
					if before >= 2<<20 {
						cancel() // the pipe is full by now
					}
					if items++; items%every == 0 {
						time.Sleep(10 * time.Millisecond) // a slow consumer: the pipe fills and grows
					}
				}
			})
			if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
				t.Fatalf("errors %v; want one matching context.Canceled", errs)
			}
			if after > 0 {
				t.Errorf("%d bytes yielded after the context ended; want none", after)
			}
			check()
		})
	}
}

// slowWriter takes each write after a pause, and counts what arrives after
// done is closed.
type slowWriter struct {
	pause       time.Duration
	done        <-chan struct{}
	total, late atomic.Int64
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.pause)
	w.total.Add(int64(len(p)))
	select {
	case <-w.done:
		w.late.Add(int64(len(p)))
	default:
	}
	return len(p), nil
}

// WriteTo reads under the context the process was started with: when it
// ends, WriteTo returns its error promptly, without delivering what the
// pipe still holds, nor what a child that takes its time to stop writes.
func TestWriteToStopsAtStartContext(t *testing.T) {
	for _, dest := range []string{"copy", "splice"} {
		t.Run(dest, func(t *testing.T) {
			check := leakCheck(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			// cat keeps writing through SIGTERM: the grace period is long.
			c := sh(`trap "" TERM; exec cat /dev/zero`)
			c.KillTimeout = 2 * time.Second
			p := start(t, ctx, c)
			sw := &slowWriter{pause: 5 * time.Millisecond, done: ctx.Done()}
			var w io.Writer = sw
			closeDest := func() {}
			if dest == "splice" {
				// A kernel pipe that a slow goroutine drains.
				r, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				drained := make(chan struct{})
				go func() {
					defer close(drained)
					io.CopyBuffer(sw, r, make([]byte, 64<<10))
				}()
				closeDest = func() { pw.Close(); <-drained; r.Close() }
				defer closeDest()
				w = pw
			}
			var n int64
			var err error
			within(t, 20*time.Second, "WriteTo past the Start context", func() { n, err = p.Stdout.WriteTo(w) })
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WriteTo = %d, %v; want an error matching context.DeadlineExceeded", n, err)
			}
			if !strings.Contains(err.Error(), "exec cat /dev/zero': stdout: ") {
				t.Errorf("WriteTo error %q does not name the stream", err)
			}
			p.Stdout.Close()
			if err := p.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Wait = %v; want the context's error", err)
			}
			// What was on its way: one chunk, or one splice and the
			// destination pipe's 64 KiB.
			if late, most := sw.late.Load(), int64(256<<10); late > most {
				t.Errorf("%d bytes reached the writer after the context ended; want at most %d", late, most)
			}
			closeDest()
			check()
		})
	}
}

// A PTY run (Run, Output, Chunks, Lines) ends the child's input as the pipe
// case does: after Stdin, if any, the terminal gets its end-of-file, so cat
// ends instead of waiting for the context.
func TestPTYOneShotEndsInput(t *testing.T) {
	pty := &Winsize{Rows: 24, Cols: 80}
	cat := func(stdin io.Reader) *Cmd {
		c := Command("cat")
		c.PTY, c.Stdin = pty, stdin
		return c
	}
	for _, tc := range []struct {
		name  string
		stdin io.Reader
		want  string // cat's output, after the terminal's echo of the input
	}{
		{"nil", nil, ""},
		{"lines", strings.NewReader("one\ntwo\n"), "one\ntwo\n"},
		{"partial-line", strings.NewReader("one\nlast"), "one\nlast"},
		{"reader", onlyReader{strings.NewReader("from a reader\n")}, "from a reader\n"},
		{"empty", strings.NewReader(""), ""},
	} {
		t.Run("Output-"+tc.name, func(t *testing.T) {
			check := leakCheck(t)
			out := ptyOutput(t, cat(tc.stdin))
			if !strings.HasSuffix(out, tc.want) {
				t.Errorf("cat under PTY wrote %q; want it to end with %q", out, tc.want)
			}
			check()
		})
	}
	t.Run("Run", func(t *testing.T) {
		var res *Result
		var err error
		within(t, 20*time.Second, "Run of cat under PTY", func() { res, err = cat(nil).Run(testCtx(t)) })
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Run = %+v, %v; want exit 0", res, err)
		}
	})
	for _, name := range []string{"Chunks", "Lines"} {
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			c := cat(strings.NewReader("a line\n"))
			seq := c.Chunks
			if name == "Lines" {
				seq = c.Lines
			}
			var out strings.Builder
			var errs []error
			ctx := testCtx(t)
			within(t, 20*time.Second, name+" of cat under PTY", func() {
				for b, err := range seq(ctx) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					out.Write(b)
					out.WriteByte('|')
				}
			})
			if len(errs) > 0 {
				t.Errorf("%s of cat under PTY: %v", name, errs)
			}
			if !strings.Contains(out.String(), "a line") {
				t.Errorf("%s of cat under PTY: %q", name, out.String())
			}
			check()
		})
	}
	// Start with a Stdin reader ends the input too, as a pipe would.
	t.Run("Start-reader", func(t *testing.T) {
		check := leakCheck(t)
		ctx := testCtx(t)
		p := start(t, ctx, cat(strings.NewReader("x")))
		var out []byte
		within(t, 20*time.Second, "reading cat's terminal", func() { out, _ = io.ReadAll(p.Stdout) })
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("Wait: %v (output %q)", err, out)
		}
		if !strings.Contains(string(out), "xx") { // the echo, then cat
			t.Errorf("output %q; want the echo and cat's copy of x", out)
		}
		check()
	})
}

// A descendant that escaped the group (setsid) and holds the terminal open,
// or keeps writing to it, cannot hang the reader of a PTY: once the process
// and its group are gone, what the terminal holds is delivered and the
// Stream ends.
func TestPTYEscapedDescendantDoesNotHangReader(t *testing.T) {
	for _, escape := range []string{"sleep 1000", "yes"} {
		t.Run(strings.Fields(escape)[0], func(t *testing.T) {
			check := leakCheck(t)
			c, pidfile := escapedScript(t, escape)
			onPTY(c)
			var out []byte
			var err error
			within(t, 20*time.Second, "Output under PTY with an escaped descendant", func() { out, err = c.Output(testCtx(t)) })
			if err != nil || !strings.HasPrefix(string(out), "escaped\r\n") {
				t.Errorf("Output = %.40q (%d bytes), %v; want the shell's output first", out, len(out), err)
			}
			// What the terminal held, and not much more: the drain of a
			// terminal is bounded.
			if len(out) > 2*ptyDrainMost {
				t.Errorf("Output read %d bytes; the escaped writer's output went on being read", len(out))
			}
			// (yes dies of the hangup once the master is closed.)
			b, _ := os.ReadFile(pidfile)
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); escape != "yes" && (pid <= 0 || isDead(pid)) {
				t.Errorf("the escaped descendant (%q) is not alive: the test proves nothing", b)
			}
			check()
		})
	}
}
