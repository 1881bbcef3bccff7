//go:build linux

package netrunner

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// liveHeap is the heap in use after a collection: what is live. The second
// collection empties what sync.Pools kept through the first.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
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
			var grown int64
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
