package netrunner

import (
	"runtime"
	"testing"
	"time"
)

// A running process that writes nothing costs no goroutine of its own: its
// exit and its stderr tail are waited for by one goroutine for all. The
// stderr it does write still reaches the ExitError.
func TestIdleProcessNoGoroutine(t *testing.T) {
	const procs = 32
	warmUp(t)
	ctx := testCtx(t)
	waitSettled(t)
	before := runtime.NumGoroutine()
	ps := make([]*Process, procs)
	for i := range ps {
		ps[i] = start(t, ctx, Command("sleep", "60"))
	}
	// The fork threads', and the one waiting for them all.
	if n := runtime.NumGoroutine() - before; n > maxForkThreads+1 {
		t.Errorf("%d idle processes run %d more goroutines; want at most %d", procs, n, maxForkThreads+1)
	}
	late := start(t, ctx, sh("sleep 0.2; echo late >&2; exit 3"))
	err := late.Wait(ctx)
	if e := exitErr(t, err); string(e.Stderr) != "late\n" {
		t.Errorf("ExitError.Stderr = %q, want %q", e.Stderr, "late\n")
	}
	for _, p := range ps {
		p.Kill()
		<-p.Done()
	}
	// Within lingerIdle, the goroutines kept for the next processes go too.
	goroutinesBack(t, before, "after the idle processes were killed")
}

// Processes that end with nothing on stderr, the common case, start no
// drainer, and leave no goroutine once lingerIdle has passed.
func TestQuietProcessesLeaveNoGoroutine(t *testing.T) {
	warmUp(t)
	ctx := testCtx(t)
	waitSettled(t)
	before := runtime.NumGoroutine()
	for range 20 {
		if _, err := Command("true").Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	goroutinesBack(t, before, "after 20 runs of true")
}

// waitSettled waits until the goroutines kept for lingerIdle after the last
// process are gone: the fork thread's and the one waiting for stderr tails.
func waitSettled(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "the lingering goroutines to end", func() bool {
		forkThreads.mu.Lock()
		forking := len(forkThreads.all) > 0
		forkThreads.mu.Unlock()
		readableWaits.mu.Lock()
		waiting := readableWaits.running
		readableWaits.mu.Unlock()
		return !forking && !waiting
	})
}
