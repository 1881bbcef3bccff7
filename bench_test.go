package netrunner

// Benchmarks that run each case for netrunner and for its baseline side by
// side, in the same run (issue 7). Sub-benchmark names pair up:
//
//	BenchmarkStream/<producer>/{netrunner-next,os-exec-copy,tuned-reference}
//	BenchmarkWriteTo/<destination>/{netrunner-writeto,os-exec-copy}
//	BenchmarkSpawn/{netrunner-start-wait,netrunner-run,os-exec-run}
//	BenchmarkRoundTrip/{netrunner,os-exec}
//	BenchmarkAllocsPerChunk/{netrunner-next,...,os-exec-read}
//	BenchmarkConcurrent1000/{netrunner-next,os-exec-copy}
//	BenchmarkHeap1GiB/{netrunner-next,netrunner-request16,os-exec-copy}
//
// `go run ./examples/benchcmp` runs them and prints the ratios against the
// targets. Every case finishes in a few seconds with -benchtime 1x, and
// nothing here runs in `go test ./...` without -bench.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

const (
	benchStreamMiB = 256             // bytes per op of the throughput cases, in MiB
	benchReadSize  = 64 << 10        // what the baselines read at a time (the default ChunkSize)
	benchTunedPipe = 1 << 20         // the tuned reference's pipe size
	benchProcs     = 1000            // processes per op of BenchmarkConcurrent1000
	benchPerProc   = 1 << 20         // bytes each of them streams
	benchHeapBytes = 1 << 30         // bytes per op of BenchmarkHeap1GiB
	benchDemand    = 16              // outstanding demand of the Request variant
	benchHeapTick  = 10 * time.Millisecond
)

// benchProducer is a program that writes a known number of zero bytes.
type benchProducer struct {
	name string
	argv func(bytes int64) []string
}

var (
	// head writes in small blocks: GNU coreutils 9.1 reads 8 KiB and writes
	// it as two 4 KiB write(2)s (seen with strace).
	smallWrites = benchProducer{"small-writes", func(n int64) []string {
		return []string{"head", "-c", strconv.FormatInt(n, 10), "/dev/zero"}
	}}
	// dd writes 1 MiB blocks: the pipe's size decides how much one wakeup moves.
	largeWrites = benchProducer{"large-writes", func(n int64) []string {
		return []string{"dd", "if=/dev/zero", "bs=1M", "count=" + strconv.FormatInt(n>>20, 10), "status=none"}
	}}
)

// benchWarmOnce starts one process before any timer runs, so that the
// one-time costs (the parent-death guard, the poller) stay out of the figures.
var benchWarmOnce sync.Once

func benchWarm(b *testing.B) {
	b.Helper()
	benchWarmOnce.Do(func() {
		ctx := context.Background()
		p, err := Command("true").Start(ctx)
		if err != nil {
			b.Fatalf("warm-up Start: %v", err)
		}
		if err := p.Wait(ctx); err != nil {
			b.Fatalf("warm-up Wait: %v", err)
		}
		p.Stdout.Close()
	})
}

// benchCtx is the context the netrunner side passes, as users do: one that
// can be cancelled, ended when the benchmark returns.
func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}

// nrStart starts argv with default options and checks the error.
func nrStart(b *testing.B, ctx context.Context, argv []string) *Process {
	b.Helper()
	p, err := Command(argv[0], argv[1:]...).Start(ctx)
	if err != nil {
		b.Fatalf("Start %q: %v", argv, err)
	}
	return p
}

// nrFinish waits for p, closes its stream, and reports a failed run.
func nrFinish(b *testing.B, ctx context.Context, p *Process, n, want int64, err error) {
	b.Helper()
	werr := p.Wait(ctx)
	p.Stdout.Close()
	if err == nil {
		err = werr
	}
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("read %d bytes, want %d", n, want)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// nrNextAll reads s to the end with Next.
func nrNextAll(ctx context.Context, s *Stream) (int64, error) {
	var n int64
	for {
		chunk, err := s.Next(ctx)
		n += int64(len(chunk))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// execPipe starts argv with os/exec and returns it with its StdoutPipe.
func execPipe(b *testing.B, argv []string) (*exec.Cmd, io.ReadCloser) {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("exec Start %q: %v", argv, err)
	}
	return cmd, out
}

// execFinish waits for cmd and reports a failed run.
func execFinish(b *testing.B, cmd *exec.Cmd, n, want int64, err error) {
	b.Helper()
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	if err == nil && n != want {
		err = fmt.Errorf("copied %d bytes, want %d", n, want)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// tunedRun is the best this machine does without a library: a pipe raised
// to 1 MiB, its read end nonblocking on the runtime poller, the write end
// handed to the child as its stdout, 64 KiB reads into one buffer.
func tunedRun(argv []string, buf []byte) (int64, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, benchTunedPipe); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return 0, err
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return 0, err
	}
	r := os.NewFile(uintptr(fds[0]), "tuned-r") // nonblocking: the poller owns it
	w := os.NewFile(uintptr(fds[1]), "tuned-w")
	defer r.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = w
	err := cmd.Start()
	w.Close()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		n, rerr := r.Read(buf)
		total += int64(n)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return total, rerr
		}
	}
	return total, cmd.Wait()
}

// BenchmarkStream: throughput of a Next loop with default options, against
// os/exec's StdoutPipe + io.Copy(io.Discard) and the tuned reference.
func BenchmarkStream(b *testing.B) {
	const size = benchStreamMiB << 20
	for _, prod := range []benchProducer{smallWrites, largeWrites} {
		argv := prod.argv(size)
		b.Run(prod.name+"/netrunner-next", func(b *testing.B) {
			benchWarm(b)
			ctx := benchCtx(b)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p := nrStart(b, ctx, argv)
				n, err := nrNextAll(ctx, p.Stdout)
				nrFinish(b, ctx, p, n, size, err)
			}
		})
		b.Run(prod.name+"/os-exec-copy", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for range b.N {
				cmd, out := execPipe(b, argv)
				n, err := io.Copy(io.Discard, out)
				execFinish(b, cmd, n, size, err)
			}
		})
		b.Run(prod.name+"/tuned-reference", func(b *testing.B) {
			buf := make([]byte, benchReadSize)
			b.SetBytes(size)
			b.ReportAllocs()
			for range b.N {
				n, err := tunedRun(argv, buf)
				if err == nil && n != size {
					err = fmt.Errorf("read %d bytes, want %d", n, size)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchDest is a destination *os.File and how to end it.
type benchDest struct {
	name string
	open func(b *testing.B) (w *os.File, finish func())
}

var benchDests = []benchDest{
	{"pipe", func(b *testing.B) (*os.File, func()) {
		// The other end is drained by a goroutine with a big read loop.
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 1<<20)
			for {
				if _, err := r.Read(buf); err != nil {
					return
				}
			}
		}()
		return w, func() { w.Close(); <-done; r.Close() }
	}},
	{"devnull", func(b *testing.B) (*os.File, func()) {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		return f, func() { f.Close() }
	}},
}

// BenchmarkWriteTo: Stream.WriteTo into an *os.File against io.Copy from
// os/exec's StdoutPipe into the same destination, with the large-write
// producer, so the copy rather than the producer is the limit.
func BenchmarkWriteTo(b *testing.B) {
	const size = benchStreamMiB << 20
	argv := largeWrites.argv(size)
	for _, dest := range benchDests {
		b.Run(dest.name+"/netrunner-writeto", func(b *testing.B) {
			benchWarm(b)
			ctx := benchCtx(b)
			w, finish := dest.open(b)
			defer finish()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p := nrStart(b, ctx, argv)
				n, err := p.Stdout.WriteTo(w)
				nrFinish(b, ctx, p, n, size, err)
			}
		})
		b.Run(dest.name+"/os-exec-copy", func(b *testing.B) {
			w, finish := dest.open(b)
			defer finish()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cmd, out := execPipe(b, argv)
				n, err := io.Copy(w, out)
				execFinish(b, cmd, n, size, err)
			}
		})
	}
}

// BenchmarkSpawn: Start+Wait of true, with the parent-death guard already
// running, against exec.Command("true").Run(). netrunner-run (Cmd.Run, no
// stdin pipe) is shown for reference.
func BenchmarkSpawn(b *testing.B) {
	b.Run("netrunner-start-wait", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			p, err := Command("true").Start(ctx)
			if err != nil {
				b.Fatal(err)
			}
			err = p.Wait(ctx)
			p.Stdout.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("netrunner-run", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := Command("true").Run(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("os-exec-run", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := exec.Command("true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRoundTrip: one byte written to a running cat and read back, per op.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("netrunner", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		p := nrStart(b, ctx, []string{"cat"})
		msg := []byte{'x'}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := p.Write(ctx, msg); err != nil {
				b.Fatal(err)
			}
			if chunk, err := p.Stdout.Next(ctx); err != nil || len(chunk) != 1 {
				b.Fatalf("Next: %q, %v", chunk, err)
			}
		}
		b.StopTimer()
		p.CloseStdin()
		n, err := nrNextAll(ctx, p.Stdout)
		nrFinish(b, ctx, p, n, 0, err)
	})
	b.Run("os-exec", func(b *testing.B) {
		cmd := exec.Command("cat")
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		msg, back := []byte{'x'}, make([]byte, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := in.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(out, back); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		in.Close()
		n, err := io.Copy(io.Discard, out)
		execFinish(b, cmd, n, 0, err)
	})
}

// benchSink is a writer that is not an *os.File, so WriteTo takes its
// chunked path.
type benchSink struct{ n int64 }

func (s *benchSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }

// benchMallocs returns the number of heap allocations so far.
func benchMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// BenchmarkAllocsPerChunk: allocations per chunk in steady state. For Next
// and Read one op is one read of a long-running `cat /dev/zero`; for WriteTo
// one op is one ChunkSize of a producer sized to b.N chunks, into a writer
// that is not a file. allocs/chunk divides the mallocs during the loop by
// the reads the Stream made (Stats.Reads).
func BenchmarkAllocsPerChunk(b *testing.B) {
	forever := []string{"cat", "/dev/zero"}
	steady := func(b *testing.B, read func(ctx context.Context, p *Process, buf []byte) error) {
		benchWarm(b)
		ctx := benchCtx(b)
		p := nrStart(b, ctx, forever)
		defer func() {
			p.Kill()
			<-p.Done()
			p.Stdout.Close()
		}()
		buf := make([]byte, defaultChunkSize)
		for range 64 { // until the pipe has grown and buffers exist
			if err := read(ctx, p, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(defaultChunkSize)
		b.ReportAllocs()
		reads, mallocs := p.Stats().Reads, benchMallocs()
		b.ResetTimer()
		for range b.N {
			if err := read(ctx, p, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		mallocs, reads = benchMallocs()-mallocs, p.Stats().Reads-reads
		b.ReportMetric(float64(mallocs)/float64(reads), "allocs/chunk")
	}
	b.Run("netrunner-next", func(b *testing.B) {
		steady(b, func(ctx context.Context, p *Process, _ []byte) error {
			_, err := p.Stdout.Next(ctx)
			return err
		})
	})
	b.Run("netrunner-next-background-ctx", func(b *testing.B) {
		steady(b, func(_ context.Context, p *Process, _ []byte) error {
			_, err := p.Stdout.Next(context.Background())
			return err
		})
	})
	b.Run("netrunner-read", func(b *testing.B) {
		steady(b, func(_ context.Context, p *Process, buf []byte) error {
			_, err := p.Stdout.Read(buf)
			return err
		})
	})
	b.Run("netrunner-writeto", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		size := int64(b.N) * defaultChunkSize
		p := nrStart(b, ctx, smallWrites.argv(size))
		var sink benchSink
		b.SetBytes(defaultChunkSize)
		b.ReportAllocs()
		mallocs := benchMallocs()
		b.ResetTimer()
		n, err := p.Stdout.WriteTo(&sink)
		b.StopTimer()
		mallocs = benchMallocs() - mallocs
		b.ReportMetric(float64(mallocs)/float64(max(p.Stats().Reads, 1)), "allocs/chunk")
		nrFinish(b, ctx, p, n, size, err)
	})
	b.Run("os-exec-read", func(b *testing.B) {
		cmd, out := execPipe(b, forever)
		defer func() {
			cmd.Process.Kill()
			out.Close()
			cmd.Wait()
		}()
		buf := make([]byte, defaultChunkSize)
		b.SetBytes(defaultChunkSize)
		b.ReportAllocs()
		mallocs := benchMallocs()
		b.ResetTimer()
		for range b.N {
			if _, err := out.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(benchMallocs()-mallocs)/float64(b.N), "allocs/chunk")
	})
}

// BenchmarkConcurrent1000: one op is 1000 processes started at once, each
// streaming 1 MiB to its own goroutine (errgroup).
func BenchmarkConcurrent1000(b *testing.B) {
	argv := smallWrites.argv(benchPerProc)
	b.Run("netrunner-next", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		b.SetBytes(benchProcs * benchPerProc)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			var g errgroup.Group
			for range benchProcs {
				g.Go(func() error {
					p, err := Command(argv[0], argv[1:]...).Start(ctx)
					if err != nil {
						return err
					}
					n, err := nrNextAll(ctx, p.Stdout)
					werr := p.Wait(ctx)
					p.Stdout.Close()
					return errors.Join(err, werr, benchCount(n, benchPerProc))
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("os-exec-copy", func(b *testing.B) {
		b.SetBytes(benchProcs * benchPerProc)
		b.ReportAllocs()
		for range b.N {
			var g errgroup.Group
			for range benchProcs {
				g.Go(func() error {
					cmd := exec.Command(argv[0], argv[1:]...)
					out, err := cmd.StdoutPipe()
					if err != nil {
						return err
					}
					if err := cmd.Start(); err != nil {
						return err
					}
					n, err := io.Copy(io.Discard, out)
					return errors.Join(err, cmd.Wait(), benchCount(n, benchPerProc))
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchCount(n, want int64) error {
	if n != want {
		return fmt.Errorf("streamed %d bytes, want %d", n, want)
	}
	return nil
}

// heapPeak samples HeapInuse every benchHeapTick until stop is called,
// which returns the peak seen.
func heapPeak() (stop func() uint64) {
	var peak uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(benchHeapTick)
		defer t.Stop()
		for {
			sample()
			select {
			case <-t.C:
			case <-quit:
				sample()
				return
			}
		}
	}()
	return func() uint64 { close(quit); <-done; return peak }
}

// BenchmarkHeap1GiB: the Go heap while 1 GiB streams through. heap-growth-B
// is the peak HeapInuse seen during the op minus HeapInuse after a GC just
// before it; the target is ChunkSize × outstanding demand + 1 MiB.
func BenchmarkHeap1GiB(b *testing.B) {
	argv := largeWrites.argv(benchHeapBytes)
	measure := func(b *testing.B, op func() error) {
		b.SetBytes(benchHeapBytes)
		b.ReportAllocs()
		var growth, peak uint64
		for range b.N {
			b.StopTimer()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			stop := heapPeak()
			b.StartTimer()
			err := op()
			p := stop()
			if err != nil {
				b.Fatal(err)
			}
			peak = max(peak, p)
			if p > ms.HeapInuse {
				growth = max(growth, p-ms.HeapInuse)
			}
		}
		b.ReportMetric(float64(peak), "peak-heap-B")
		b.ReportMetric(float64(growth), "heap-growth-B")
	}
	b.Run("netrunner-next", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		measure(b, func() error {
			p := nrStart(b, ctx, argv)
			n, err := nrNextAll(ctx, p.Stdout)
			werr := p.Wait(ctx)
			p.Stdout.Close()
			return errors.Join(err, werr, benchCount(n, benchHeapBytes))
		})
	})
	b.Run("netrunner-request16", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		measure(b, func() error {
			p := nrStart(b, ctx, argv)
			p.Stdout.Request(benchDemand)
			var n int64
			for chunk := range p.Stdout.C() {
				n += int64(len(chunk))
				p.Stdout.Request(1)
			}
			werr := p.Wait(ctx)
			p.Stdout.Close()
			return errors.Join(p.Stdout.Err(), werr, benchCount(n, benchHeapBytes))
		})
	})
	b.Run("os-exec-copy", func(b *testing.B) {
		measure(b, func() error {
			cmd, out := execPipe(b, argv)
			n, err := io.Copy(io.Discard, out)
			return errors.Join(err, cmd.Wait(), benchCount(n, benchHeapBytes))
		})
	})
}
