//go:build linux

package netrunner

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Close racing a Next loop in another goroutine: the loop ends with an
// error, nothing panics or leaks.
func TestRaceCloseNext(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	for i := range 20 {
		p, err := Command("yes").Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := p.Stdout
		done := make(chan error, 1)
		first := make(chan struct{})
		go func() {
			var once sync.Once
			for {
				_, err := s.Next(ctx)
				once.Do(func() { close(first) })
				if err != nil {
					done <- err
					return
				}
			}
		}()
		<-first
		if i%2 == 0 {
			time.Sleep(time.Millisecond)
		}
		s.Close()
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("Next racing Close ended with %v; want os.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Next loop still running 10s after Close")
		}
		p.Kill()
		p.Wait(ctx)
	}
	check()
}

// Close racing a blocked Next (the producer is silent).
func TestRaceCloseBlockedNext(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	done := make(chan error, 1)
	go func() {
		_, err := p.Stdout.Next(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block (not needed for correctness)
	p.Stdout.Close()
	select {
	case err := <-done:
		if err == nil || err == io.EOF {
			t.Errorf("blocked Next after Close = %v; want an error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Next did not return after Close")
	}
}

// Kill racing a natural exit: Kill returns nil, Wait says exit 0 or SIGKILL.
func TestRaceKillNaturalExit(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	for range 50 {
		p, err := Command("true").Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var kerr, werr error
		wg.Add(2)
		go func() { defer wg.Done(); kerr = p.Kill() }()
		go func() { defer wg.Done(); werr = p.Wait(ctx) }()
		wg.Wait()
		if kerr != nil {
			t.Errorf("Kill racing exit = %v; want nil", kerr)
		}
		if werr != nil {
			var ee *ExitError
			if !errors.As(werr, &ee) || ee.Signal != syscall.SIGKILL {
				t.Errorf("Wait = %v; want nil or SIGKILL", werr)
			}
		}
		if err2 := p.Wait(ctx); (err2 == nil) != (werr == nil) {
			t.Errorf("Wait again = %v; first %v", err2, werr)
		}
		p.Stdout.Close()
	}
	check()
}

// Stop from two goroutines at once: both return the same result.
func TestRaceStopTwice(t *testing.T) {
	ctx := testCtx(t)
	for range 10 {
		c := Command("sleep", "1000")
		p := start(t, ctx, c)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i == 2 {
					errs[i] = p.Kill()
					return
				}
				errs[i] = p.Stop(ctx)
			}()
		}
		wg.Wait()
		if errs[2] != nil {
			t.Errorf("Kill racing Stop = %v", errs[2])
		}
		a, b := exitErr(t, errs[0]), exitErr(t, errs[1])
		if a.Code != b.Code || a.Signal != b.Signal || a.Code != -1 {
			t.Errorf("concurrent Stops: %v and %v; want the same signal death", a, b)
		}
		if a.Signal != syscall.SIGTERM && a.Signal != syscall.SIGKILL {
			t.Errorf("Stop = %v", a)
		}
	}
}

// Wait from many goroutines: all get the same error.
func TestRaceWaitMany(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, sh("read x; exit 5"))
	const n = 32
	errs := make(chan error, n)
	for range n {
		go func() { errs <- p.Wait(ctx) }()
	}
	if _, err := p.Write(ctx, []byte("go\n")); err != nil {
		t.Fatal(err)
	}
	var first string
	for range n {
		err := <-errs
		ee := exitErr(t, err)
		if ee.Code != 5 {
			t.Errorf("Wait = %v; want exit 5", err)
		}
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Errorf("Waits disagree: %q vs %q", err, first)
		}
	}
}

// Write from several goroutines while another reads: every byte arrives.
func TestRaceWriteMany(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("cat"))
	outc := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, p.Stdout)
		outc <- n
	}()
	const writers, each = 6, 200
	buf := make([]byte, 3000)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := p.Write(ctx, buf); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				_ = p.Stats()
			}
		}()
	}
	wg.Wait()
	p.CloseStdin()
	if n := <-outc; n != writers*each*int64(len(buf)) {
		t.Errorf("read %d bytes; want %d", n, writers*each*len(buf))
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.BytesIn != writers*each*int64(len(buf)) {
		t.Errorf("Stats().BytesIn = %d", st.BytesIn)
	}
}

// The first Write, which puts the stdin pipe on the poller, races
// CloseStdin: the byte either reaches the child or the Write says stdin is
// closed, and nothing is left open.
func TestRaceFirstWriteCloseStdin(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	for range 20 {
		p := start(t, ctx, Command("cat"))
		var wg sync.WaitGroup
		var werr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, werr = p.Write(ctx, []byte("x"))
		}()
		go func() {
			defer wg.Done()
			p.CloseStdin()
		}()
		wg.Wait()
		out, err := io.ReadAll(p.Stdout)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case werr == nil && string(out) != "x":
			t.Errorf("Write succeeded, cat echoed %q; want \"x\"", out)
		case werr != nil && (!errors.Is(werr, ErrStdinClosed) || len(out) != 0):
			t.Errorf("Write = %v, cat echoed %q; want ErrStdinClosed and nothing", werr, out)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	check()
}

// Request from one goroutine while another receives from C.
func TestRaceRequestReceive(t *testing.T) {
	const total = 10_000_000
	ctx := testCtx(t)
	c := Command("head", "-c", "10000000", "/dev/zero")
	c.ChunkSize = 4096
	p := start(t, ctx, c)
	s := p.Stdout
	got := make(chan struct{}, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the requester
		defer wg.Done()
		s.Request(4)
		for {
			select {
			case <-got:
				s.Request(1)
			case <-stop:
				return
			}
		}
	}()
	n := 0
	timeout := time.After(20 * time.Second)
loop:
	for {
		select {
		case b, ok := <-s.C():
			if !ok {
				break loop
			}
			n += len(b)
			got <- struct{}{}
		case <-timeout:
			t.Errorf("C not closed after 20s; %d bytes", n)
			break loop
		}
	}
	close(stop)
	wg.Wait()
	if n != total {
		t.Errorf("received %d bytes; want %d", n, total)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Error(err)
	}
}

// Signal, Stats, ExitCode and Done racing a natural exit.
func TestRaceSignalDuringExit(t *testing.T) {
	ctx := testCtx(t)
	for range 30 {
		p, err := Command("true").Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(3)
		go func() {
			defer wg.Done()
			if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal racing exit = %v", err)
			}
		}()
		go func() { defer wg.Done(); _ = p.Stats(); _ = p.ExitCode() }()
		go func() { defer wg.Done(); <-p.Done() }()
		wg.Wait()
		p.Wait(ctx)
		p.Stdout.Close()
	}
}

// Stop while a Wait with a context that ends is pending, and Next running
// in another goroutine: all return.
func TestRaceStopWaitNext(t *testing.T) {
	ctx := testCtx(t)
	c := Command("yes")
	c.KillTimeout = 200 * time.Millisecond
	p := start(t, ctx, c)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			if _, err := p.Stdout.Next(ctx); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		p.Wait(wctx)
	}()
	p.Stop(ctx)
	within(t, 10*time.Second, "readers after Stop", wg.Wait)
}

// ExitCode and Stats polled while the process exits only ever show
// "running" (-1, a growing Duration) or the final state: never a made-up
// exit code or a negative Duration in between.
func TestRaceExitCodeDuringExit(t *testing.T) {
	ctx := testCtx(t)
	for i := range 60 {
		p, err := sh("exit 3").Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		bad := make(chan string, 4)
		var wg sync.WaitGroup
		for range 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c := p.ExitCode(); c != -1 && c != 3 {
						select {
						case bad <- "ExitCode() = " + strconv.Itoa(c):
						default:
						}
					}
					st := p.Stats()
					if st.ExitCode != -1 && st.ExitCode != 3 {
						select {
						case bad <- "Stats().ExitCode = " + strconv.Itoa(st.ExitCode):
						default:
						}
					}
					if st.Duration < 0 {
						select {
						case bad <- "Stats().Duration = " + st.Duration.String():
						default:
						}
					}
				}
			}()
		}
		p.Wait(ctx)
		close(stop)
		wg.Wait()
		p.Stdout.Close()
		select {
		case msg := <-bad:
			t.Fatalf("run %d of sh -c 'exit 3': while it exited, %s", i, msg)
		default:
		}
		if c := p.ExitCode(); c != 3 {
			t.Fatalf("ExitCode after Wait = %d", c)
		}
	}
}

// Next from several goroutines at once: each chunk goes to one caller, and
// together they see every byte.
func TestRaceNextConcurrent(t *testing.T) {
	ctx := testCtx(t)
	for range 5 {
		p := start(t, ctx, Command("head", "-c", "1000000", "/dev/zero"))
		var wg sync.WaitGroup
		counts := make([]int, 3)
		for i := range counts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					b, err := p.Stdout.Next(ctx)
					if err != nil {
						if err != io.EOF {
							t.Errorf("Next: %v", err)
						}
						return
					}
					counts[i] += len(b)
				}
			}()
		}
		wg.Wait()
		if total := counts[0] + counts[1] + counts[2]; total != 1000000 {
			t.Errorf("read %d bytes in all (%v); want 1000000", total, counts)
		}
		if err := p.Wait(ctx); err != nil {
			t.Error(err)
		}
	}
}

// Many runs at once, each output checked.
func TestRaceManyConcurrentRuns(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strconv.Itoa(i) + "\n"
			c := Command("sh", "-c", `head -c 65536 /dev/urandom >/dev/null; echo "$0"`, strconv.Itoa(i))
			out, err := c.Output(ctx)
			if err != nil || string(out) != want {
				t.Errorf("run %d: %q, %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	check()
}
