//go:build linux

package netrunner

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// liveHeap is the heap in use after a collection: what is live.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A consumer waiting for output that does not come holds no chunk buffer
// (ChunkSize, 64 KiB by default): not before the first byte, not after data
// flowed and stopped, and not with demand granted to the read-ahead pump.
func TestIdleConsumerHoldsNoChunk(t *testing.T) {
	const procs = 64
	const most = defaultChunkSize / 2 // per process, well below a chunk
	warmUp(t)
	for _, tc := range []struct {
		name    string
		cmd     func() *Cmd
		consume func(ctx context.Context, p *Process)
	}{
		{"Next before any output", func() *Cmd { return Command("sleep", "60") }, nextUntilEnd},
		{"Next after output", func() *Cmd { return sh("echo x; exec sleep 60") }, nextUntilEnd},
		{"Request", func() *Cmd { return Command("sleep", "60") }, func(ctx context.Context, p *Process) {
			p.Stdout.Request(4)
			for range p.Stdout.C() {
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			before := liveHeap()
			var consumers sync.WaitGroup
			ps := make([]*Process, procs)
			for i := range ps {
				ps[i] = start(t, ctx, tc.cmd())
				consumers.Add(1)
				go func() {
					defer consumers.Done()
					tc.consume(ctx, ps[i])
				}()
			}
			var grown uint64
			ok := eventually(20*time.Second, func() bool {
				grown = liveHeap() - before
				return grown < procs*most
			})
			for _, p := range ps {
				p.Kill()
			}
			consumers.Wait()
			if !ok {
				t.Errorf("%d idle processes with a waiting consumer: heap grew by %d B, %d B each; want < %d B each",
					procs, grown, grown/procs, most)
			}
		})
	}
}

// nextUntilEnd calls Next until it fails.
func nextUntilEnd(ctx context.Context, p *Process) {
	for {
		if _, err := p.Stdout.Next(ctx); err != nil {
			return
		}
	}
}

// A running process that writes nothing costs one goroutine, its
// supervisor: its stderr tail has no drainer until stderr has data. The
// stderr it does write still reaches the ExitError.
func TestIdleProcessOneGoroutine(t *testing.T) {
	const procs = 32
	warmUp(t)
	ctx := testCtx(t)
	waitSettled(t)
	before := runtime.NumGoroutine()
	ps := make([]*Process, procs)
	for i := range ps {
		ps[i] = start(t, ctx, Command("sleep", "60"))
	}
	// Besides one per process: the fork thread's, and the one waiting for
	// every stderr tail.
	if n := runtime.NumGoroutine() - before; n > procs+2 {
		t.Errorf("%d idle processes run %d more goroutines; want at most %d", procs, n, procs+2)
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
		forkThread.mu.Lock()
		forking := forkThread.jobs != nil
		forkThread.mu.Unlock()
		readableWaits.mu.Lock()
		waiting := readableWaits.running
		readableWaits.mu.Unlock()
		return !forking && !waiting
	})
}
