//go:build linux

package netrunner

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A group does not outlive its leader: Output of a shell that leaves a
// background sleep holding stdout returns, and the sleep is dead.
func TestLeftoverDescendantKilled(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := sh("sleep 1000 & echo $!")
	c.KillTimeout = 500 * time.Millisecond
	var out []byte
	var err error
	t0 := time.Now()
	within(t, 10*time.Second, "Output with a leftover background sleep", func() { out, err = c.Output(ctx) })
	d := time.Since(t0)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("Output = %q, %v; want the sleep's pid", out, err)
	}
	killPids(t, pid)
	if err != nil {
		t.Errorf("Output: %v; want nil (the shell exited 0)", err)
	}
	t.Logf("Output returned after %v", d)
	waitFor(t, 2*time.Second, "the leftover sleep to die", func() bool { return isDead(pid) })
	check()
}

// Same through Start: Wait returns, the stream ends, Done is closed only
// once the leftover member is gone.
func TestLeftoverDescendantDone(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := sh("sleep 1000 & echo $!")
	c.KillTimeout = 300 * time.Millisecond
	p := start(t, ctx, c)
	pids := readPids(t, bufio.NewReader(p.Stdout), 1)
	killPids(t, pids...)
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10s after the shell exited")
	}
	if !isDead(pids[0]) {
		t.Errorf("Done closed while the leftover sleep %d still lives", pids[0])
	}
	if err := p.Wait(ctx); err != nil {
		t.Errorf("Wait: %v", err)
	}
	var rest []byte
	within(t, 5*time.Second, "reading the rest of stdout", func() { rest, _ = io.ReadAll(p.Stdout) })
	if len(rest) != 0 {
		t.Errorf("more stdout: %q", rest)
	}
	reap(t, p)
	check()
}

// Stop: a child that ignores TERM is KILLed after KillTimeout.
func TestStopTermIgnored(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := sh(`trap "" TERM; echo ready; while :; do sleep 0.05; done`)
	c.KillTimeout = 300 * time.Millisecond
	p := start(t, ctx, c)
	if line := readLine(t, bufio.NewReader(p.Stdout)); line != "ready" {
		t.Fatalf("first line %q", line)
	}
	t0 := time.Now()
	err := p.Stop(ctx)
	d := time.Since(t0)
	ee := exitErr(t, err)
	if ee.Code != -1 || ee.Signal != syscall.SIGKILL {
		t.Errorf("Stop = ExitError{Code %d, Signal %v}; want {-1, SIGKILL}", ee.Code, ee.Signal)
	}
	if d < 250*time.Millisecond {
		t.Errorf("Stop took %v: KILL came before the 300ms grace", d)
	}
	if d > 10*time.Second {
		t.Errorf("Stop took %v with KillTimeout 300ms", d)
	}
	t.Logf("Stop took %v (KillTimeout 300ms)", d)
	if !isDead(p.Pid()) {
		t.Error("process alive after Stop returned")
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Stop returned")
	}
	if err2 := p.Wait(ctx); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("Wait after Stop = %v; Stop returned %v", err2, err)
	}
	reap(t, p)
	check()
}

// Stop: a child that traps TERM sees it and exits its own way.
func TestStopTermTrapped(t *testing.T) {
	ctx := testCtx(t)
	c := sh(`trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done`)
	c.KillTimeout = 10 * time.Second
	p := start(t, ctx, c)
	r := bufio.NewReader(p.Stdout)
	if line := readLine(t, r); line != "ready" {
		t.Fatalf("first line %q", line)
	}
	t0 := time.Now()
	err := p.Stop(ctx)
	ee := exitErr(t, err)
	if ee.Code != 7 || ee.Signal != 0 {
		t.Errorf("Stop = ExitError{Code %d, Signal %v}; want Code 7", ee.Code, ee.Signal)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Stop took %v though the child exits on TERM", d)
	}
	rest, rerr := io.ReadAll(r)
	if rerr != nil || !strings.Contains(string(rest), "got-term") {
		t.Errorf("rest of stdout %q, %v; want got-term", rest, rerr)
	}
}

// Stop of a child that exits on TERM: ExitError with Signal SIGTERM.
func TestStopGraceful(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	ee := exitErr(t, p.Stop(ctx))
	if ee.Code != -1 || ee.Signal != syscall.SIGTERM {
		t.Errorf("Stop = ExitError{Code %d, Signal %v}; want {-1, SIGTERM}", ee.Code, ee.Signal)
	}
	// Stop again, Kill after: same answer, no error.
	ee2 := exitErr(t, p.Stop(ctx))
	if ee2.Code != ee.Code || ee2.Signal != ee.Signal {
		t.Errorf("second Stop = %v; first %v", ee2, ee)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after Stop: %v", err)
	}
}

// KillTimeout < 0: SIGKILL at once, the TERM trap never runs.
func TestStopKillTimeoutNegative(t *testing.T) {
	ctx := testCtx(t)
	c := sh(`trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.05; done`)
	c.KillTimeout = -1
	p := start(t, ctx, c)
	r := bufio.NewReader(p.Stdout)
	if line := readLine(t, r); line != "ready" {
		t.Fatalf("first line %q", line)
	}
	ee := exitErr(t, p.Stop(ctx))
	if ee.Code != -1 || ee.Signal != syscall.SIGKILL {
		t.Errorf("Stop = ExitError{Code %d, Signal %v}; want {-1, SIGKILL}", ee.Code, ee.Signal)
	}
	var rest []byte
	within(t, 5*time.Second, "reading the rest of stdout", func() { rest, _ = io.ReadAll(r) })
	if strings.Contains(string(rest), "got-term") {
		t.Errorf("the child saw TERM with KillTimeout < 0")
	}
}

// Stop of a process that already exited returns its status.
func TestStopAfterExit(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, sh("exit 5"))
	<-p.Done()
	ee := exitErr(t, p.Stop(ctx))
	if ee.Code != 5 {
		t.Errorf("Stop after exit 5 = %v", ee)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after exit = %v", err)
	}
}

// Cancelling the Start context stops the group: TERM, then KILL after
// KillTimeout, the shell and both background sleeps dead, all reaped.
func TestContextCancelKillsGroup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		sig    syscall.Signal
	}{
		{"term", "sleep 1000 & echo $!; sleep 1000 & echo $!; wait", syscall.SIGTERM},
		// The shell ignores TERM (set after the sleeps started, so they do not).
		{"term-then-kill", `sleep 1000 & echo $!; sleep 1000 & echo $!; trap "" TERM; echo ready; while :; do sleep 0.05; done`, syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := sh(tc.script)
			c.KillTimeout = 300 * time.Millisecond
			p := start(t, ctx, c)
			r := bufio.NewReader(p.Stdout)
			pids := append(readPids(t, r, 2), p.Pid())
			killPids(t, pids...)
			if tc.sig == syscall.SIGKILL {
				readLine(t, r) // ready: the trap is set
			}
			t0 := time.Now()
			cancel()
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			err := p.Wait(wctx)
			if d := time.Since(t0); tc.sig == syscall.SIGKILL && d < 250*time.Millisecond {
				t.Errorf("killed %v after the cancel: before the 300ms KillTimeout", d)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Wait = %v; want an error matching context.Canceled", err)
			}
			ee := exitErr(t, err)
			if ee.Code != -1 || ee.Signal != tc.sig {
				t.Errorf("ExitError{Code %d, Signal %v}; want {-1, %v}", ee.Code, ee.Signal, tc.sig)
			}
			for _, pid := range pids {
				waitFor(t, 3*time.Second, "pid "+strconv.Itoa(pid)+" to die", func() bool { return isDead(pid) })
			}
			if ok, what := notOurUnreapedChild(p.Pid()); !ok {
				t.Errorf("after Wait the shell is %s", what)
			}
			reap(t, p)
			check()
		})
	}
}

// Wait with a short context returns that context's error; the process keeps
// running.
func TestWaitShortContext(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := p.Wait(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a short context = %v; want context.DeadlineExceeded", err)
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		t.Errorf("Wait with a short context returned an ExitError %v", ee)
	}
	if isDead(p.Pid()) {
		t.Fatal("the process died when a Wait context ended")
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed")
	default:
	}
	if err := p.Signal(0); err != nil {
		t.Errorf("Signal(0) = %v", err)
	}
	if got := p.ExitCode(); got != -1 {
		t.Errorf("ExitCode = %d", got)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if ee := exitErr(t, p.Wait(ctx)); ee.Signal != syscall.SIGKILL {
		t.Errorf("Wait after Kill: %v", ee)
	}
}

// 300 mixed runs leave no descriptor and no zombie behind.
func TestMixedRunsNoLeak(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	for i := range 300 {
		switch i % 4 {
		case 0:
			if out, err := Command("printf", "ok").Output(ctx); err != nil || string(out) != "ok" {
				t.Fatalf("run %d: success case: %q, %v", i, out, err)
			}
		case 1:
			if _, err := sh("echo fail >&2; exit 1").Run(ctx); err == nil {
				t.Fatalf("run %d: failure case succeeded", i)
			}
		case 2:
			if _, err := Command("netrunner-no-such-program").Start(ctx); !errors.Is(err, exec.ErrNotFound) {
				t.Fatalf("run %d: missing binary: %v", i, err)
			}
		case 3:
			c := Command("sleep", "1000")
			c.Stderr = StderrStream
			p, err := c.Start(ctx)
			if err != nil {
				t.Fatalf("run %d: Start: %v", i, err)
			}
			if err := p.Kill(); err != nil {
				t.Fatalf("run %d: Kill: %v", i, err)
			}
			if err := p.Wait(ctx); err == nil {
				t.Fatalf("run %d: killed process: Wait nil", i)
			}
			p.Stdout.Close()
			p.Stderr.Close()
		}
	}
	check()
}

// Processes started, stopped and waited without reading their streams to
// the end do not leak once the streams are closed.
func TestStartedStreamsClosedNoLeak(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	for range 20 {
		p, err := Command("yes").Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Stdout.Next(ctx); err != nil {
			t.Fatal(err)
		}
		p.Stop(ctx)
		p.Stdout.Close()
	}
	check()
}

// A leftover descendant that ignores TERM is KILLed after KillTimeout.
func TestLeftoverIgnoringTermKilled(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := sh(`trap "" TERM; sleep 1000 & echo $!`)
	c.KillTimeout = 300 * time.Millisecond
	var out []byte
	var err error
	t0 := time.Now()
	within(t, 10*time.Second, "Output with a TERM-ignoring leftover", func() { out, err = c.Output(ctx) })
	d := time.Since(t0)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("Output = %q, %v", out, err)
	}
	killPids(t, pid)
	if err != nil {
		t.Errorf("Output: %v", err)
	}
	if d < 250*time.Millisecond {
		t.Errorf("returned after %v: the leftover was KILLed before KillTimeout", d)
	}
	waitFor(t, 2*time.Second, "the TERM-ignoring leftover to die", func() bool { return isDead(pid) })
	check()
}

// Stop reaches a process that was stopped with SIGSTOP.
func TestStopStoppedProcess(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := Command("sleep", "1000")
	c.KillTimeout = 300 * time.Millisecond
	p := start(t, ctx, c)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the process to stop", func() bool {
		pi, err := procStat(p.Pid())
		return err == nil && pi.state == 'T'
	})
	var err error
	within(t, 10*time.Second, "Stop of a stopped process", func() { err = p.Stop(ctx) })
	ee := exitErr(t, err)
	if ee.Signal != syscall.SIGTERM && ee.Signal != syscall.SIGKILL {
		t.Errorf("Stop = %v", ee)
	}
	reap(t, p)
	check()
}

// stoppedState waits until pid is stopped (state T), as SIGSTOP or SIGTTIN
// leave it.
func stoppedState(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, 10*time.Second, "pid "+strconv.Itoa(pid)+" to be stopped", func() bool {
		pi, err := procStat(pid)
		return err == nil && pi.state == 'T'
	})
}

// Stop and the end of the context send SIGCONT after SIGTERM: a stopped
// process acts on the TERM at once instead of waiting for the SIGKILL after
// KillTimeout (here far longer than the test allows).
func TestStopContinuesStoppedProcess(t *testing.T) {
	for _, how := range []string{"Stop", "ContextCancel"} {
		t.Run(how, func(t *testing.T) {
			check := leakCheck(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			c := Command("sleep", "1000")
			c.KillTimeout = time.Hour
			p := start(t, ctx, c)
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stoppedState(t, p.Pid())
			var err error
			within(t, 15*time.Second, how+" of a stopped process", func() {
				if how == "Stop" {
					err = p.Stop(context.Background())
				} else {
					cancel()
					err = p.Wait(context.Background())
				}
			})
			if ee := exitErr(t, err); ee.Signal != syscall.SIGTERM {
				t.Errorf("%s = %v, want death by SIGTERM", how, err)
			}
			reap(t, p)
			check()
		})
	}
}

// Run and Output with MaxOutput close stdout before stopping the child, so
// a child that ignores SIGTERM gets EPIPE (here SIGPIPE) at once instead of
// lasting until the SIGKILL after KillTimeout.
func TestMaxOutputTermIgnoredPrompt(t *testing.T) {
	for _, how := range []string{"Run", "Output"} {
		t.Run(how, func(t *testing.T) {
			check := leakCheck(t)
			c := sh(`trap "" TERM; exec yes`)
			c.KillTimeout = time.Hour
			c.MaxOutput = 10
			var out []byte
			var err error
			within(t, 15*time.Second, how+" past MaxOutput of a TERM-ignoring child", func() {
				if how == "Run" {
					var res *Result
					if res, err = c.Run(testCtx(t)); res != nil {
						out = res.Stdout
					}
				} else {
					out, err = c.Output(testCtx(t))
				}
			})
			if !errors.Is(err, ErrMaxOutput) {
				t.Errorf("%s: %v, want ErrMaxOutput", how, err)
			}
			if string(out) != "y\ny\ny\ny\ny\n" {
				t.Errorf("%s kept %q, want the first 10 bytes", how, out)
			}
			check()
		})
	}
}

// ExitCode and Stats say how the child ended as soon as it is reaped, while
// what is left of its group (here a descendant that ignores SIGTERM) is
// still being ended and Done is not yet closed.
func TestExitCodeKnownAtReap(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := sh(`(trap "" TERM; exec sleep 1000) & exit 3`)
	c.KillTimeout = 20 * time.Second
	p := start(t, ctx, c)
	waitFor(t, 15*time.Second, "the child reaped", func() bool { return errors.Is(p.Signal(0), os.ErrProcessDone) })
	select {
	case <-p.Done():
		t.Fatal("Done closed while a leftover that ignores SIGTERM has 20s of grace")
	default:
	}
	if code, st := p.ExitCode(), p.Stats(); code != 3 || st.ExitCode != 3 {
		t.Errorf("after the reap, before Done: ExitCode %d, Stats.ExitCode %d; want 3", code, st.ExitCode)
	}
	p.Kill()
	if err := p.Wait(ctx); p.ExitCode() != 3 {
		t.Errorf("after Done: ExitCode %d (Wait: %v); want 3", p.ExitCode(), err)
	}
	check()
}

// A child that has exited when its context ends was not stopped by it: Wait
// reports its own exit status, whether or not it was reaped yet.
func TestExitBeforeCancelStands(t *testing.T) {
	check := leakCheck(t)
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		p, err := Command("true").Start(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "true to exit", func() bool {
			pi, err := procStat(p.Pid())
			return err != nil || pi.state == 'Z'
		})
		cancel()
		if err := p.Wait(context.Background()); err != nil {
			t.Fatalf("run %d: Wait after true exited and then its context ended = %v; want nil", i, err)
		}
		p.Stdout.Close()
	}
	check()
}
