package netrunner

// The test helpers that every platform's tests use; testutil_test.go has
// the Linux ones.

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testTimeout bounds the life of every process a test starts: the context
// from testCtx ends then, which stops the process, so a test that hangs on a
// bug fails instead of hanging the whole suite.
const testTimeout = 30 * time.Second

// testCtx returns a context for one test's processes, cancelled when the
// test ends.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// start starts c and registers a cleanup that kills what is left of it,
// waits for it to be reaped and closes its streams, so that a failing test
// leaks nothing into the next one (or into goleak).
func start(t testing.TB, ctx context.Context, c *Cmd) *Process {
	t.Helper()
	p, err := c.Start(ctx)
	if err != nil {
		t.Fatalf("Start %q: %v", c.Args, err)
	}
	if p == nil {
		t.Fatalf("Start %q: nil Process and nil error", c.Args)
	}
	t.Cleanup(func() { reap(t, p) })
	return p
}

// reap kills p, waits until it is reaped and closes its streams.
func reap(t testing.TB, p *Process) {
	t.Helper()
	p.Kill()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Errorf("pid %d: Done not closed 20s after Kill", p.Pid())
	}
	if p.Stdout != nil {
		p.Stdout.Close()
	}
	if p.Stderr != nil {
		p.Stderr.Close()
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// within runs f in a goroutine and fails the test if it does not return in
// time. On a timeout the goroutine is left behind: the test's cleanup kills
// the process it waits on.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// exitErr asserts err is an *ExitError and returns it.
func exitErr(t testing.TB, err error) *ExitError {
	t.Helper()
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want an *ExitError, got %T: %v", err, err)
	}
	return ee
}
