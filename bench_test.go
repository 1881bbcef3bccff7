//go:build unix

package netrunner

// Benchmarks that run each case for netrunner and for its baseline side by
// side, in the same run (issue 7). Sub-benchmark names pair up:
//
//	BenchmarkStream/<producer>/{netrunner-next,os-exec-copy,tuned-reference}
//	BenchmarkWriteTo/<destination>/{netrunner-writeto,os-exec-copy}
//	BenchmarkSpawn/{netrunner-start-wait,netrunner-run,os-exec-run,interleaved,interleaved-run,interleaved-start,parallel/{1,8,64}}
//	BenchmarkIdle/{netrunner,netrunner-parked-next,os-exec,os-exec-parked-read}
//	BenchmarkRoundTrip/{netrunner,os-exec,interleaved}
//	BenchmarkAllocsPerChunk/{netrunner-next,...,os-exec-read}
//	BenchmarkConcurrent/1000x1MiB/{netrunner-next,os-exec-copy} (100x1MiB with -short)
//	BenchmarkHeap1GiB/{netrunner-next,netrunner-next-background-ctx,netrunner-request16,os-exec-copy}
//
// `go run ./examples/benchcmp` runs them and prints the ratios against the
// targets. With -benchtime 1x every case runs once and finishes in a few
// seconds, except BenchmarkConcurrent: a spawn costs ~3 ms on the 2-core
// machine these were written on, so its 1000 processes take ~10 s per side
// (-short runs 100). Nothing here runs in `go test ./...` without -bench.

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
)

const (
	benchStreamMiB = 256      // bytes per op of the throughput cases, in MiB
	benchReadSize  = 64 << 10 // what the baselines read at a time (the default ChunkSize)
	benchTunedPipe = 1 << 20  // the tuned reference's pipe size
	benchProcs     = 1000     // processes per op of BenchmarkConcurrent (100 with -short)
	benchPerProc   = 1 << 20  // bytes each of them streams
	benchHeapBytes = 1 << 30  // bytes per op of BenchmarkHeap1GiB
	benchDemand    = 16       // outstanding demand of the Request variant
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
// one-time costs (the parent-death watchdog, the poller) stay out of the figures.
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
// to 1 MiB where the system allows (see tunedPipe), its read end nonblocking
// on the runtime poller, the write end handed to the child as its stdout,
// 64 KiB reads into one buffer.
func tunedRun(argv []string, buf []byte, reads *int64) (int64, error) {
	r, w, err := tunedPipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		n, rerr := r.Read(buf)
		total += int64(n)
		if n > 0 {
			*reads++
		}
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
			var reads int64
			for range b.N {
				p := nrStart(b, ctx, argv)
				n, err := nrNextAll(ctx, p.Stdout)
				nrFinish(b, ctx, p, n, size, err)
				reads += p.Stats().Reads
			}
			b.ReportMetric(float64(b.N)*size/float64(reads), "B/read")
		})
		b.Run(prod.name+"/os-exec-copy", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			var reads int64
			for range b.N {
				cmd, out := execPipe(b, argv)
				// Counting reads hides nothing: io.Copy ends in
				// io.Discard's ReadFrom, 8 KiB at a time, either way.
				n, err := io.Copy(io.Discard, &benchCounter{r: out, reads: &reads})
				execFinish(b, cmd, n, size, err)
			}
			b.ReportMetric(float64(b.N)*size/float64(reads), "B/read")
		})
		b.Run(prod.name+"/tuned-reference", func(b *testing.B) {
			buf := make([]byte, benchReadSize)
			b.SetBytes(size)
			b.ReportAllocs()
			var reads int64
			for range b.N {
				n, err := tunedRun(argv, buf, &reads)
				if err == nil && n != size {
					err = fmt.Errorf("read %d bytes, want %d", n, size)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*size/float64(reads), "B/read")
		})
	}
}

// benchCounter counts the reads that return data.
type benchCounter struct {
	r     io.Reader
	reads *int64
}

func (c *benchCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		*c.reads++
	}
	return n, err
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

// The spawn case, one process each.
func nrSpawn(ctx context.Context) error {
	p, err := Command("true").Start(ctx)
	if err != nil {
		return err
	}
	err = p.Wait(ctx)
	p.Stdout.Close()
	return err
}

func nrRunSpawn(ctx context.Context) error {
	_, err := Command("true").Run(ctx)
	return err
}

func execSpawn(context.Context) error { return exec.Command("true").Run() }

// Where a spawn's time goes (issue 14), measured on the 2-core VM these
// were written on while other sessions loaded it (load average 3-25, so a
// fork+exec of true took 0.9-3.9 ms instead of the ~0.45 ms of a quiet
// machine, and wall-clock ratios of identical runs moved by +-20%: counts,
// and steps timed side by side in one process, are what hold).
//
// Per step of Start, with time.Now marks in a temporary build (400 × Start
// of true, then 400 × Run, mean; builds of before and after this round
// alternating, three runs each at load 3-5; Run's figure in brackets where
// it differs):
//
//	lookPath           54-88 µs  exec.LookPath: 9 stats down PATH; exec.Command pays the same
//	validate             7 µs
//	newStdio         27-37 µs    [35-40] stdin pipe (Run: /dev/null), stdout pipe on the poller,
//	                             stderr tail pipe bare; before: 53-68 [45-47], each on the poller
//	Ensure, argv, env   10 µs
//	spawn, before the children's cgroup (issue 11), on a fork thread:
//	  hand-off to the fork thread   70-80 µs   a futex wake of another thread
//	  syscall.StartProcess        0.9-1.2 ms   = exec.Cmd.Start's fork+exec
//	  F_SETFL on the pidfd            6 µs
//	  watchdog.WatchGroup          60-76 µs    one write(2), which wakes the watchdog process
//	  hand-off back                86-107 µs
//	  os.NewFile of the pidfd      23-40 µs    F_GETFL and an epoll_ctl ADD, for leader.wait
//	spawn now, into the children's cgroup: syscall.StartProcess (clone3 with
//	  CLONE_INTO_CGROUP, no slower than clone: 2.4-2.9 ms either way for
//	  300 StartProcess+wait4 of /bin/true on the VM at load 3) on the
//	  caller's goroutine, then F_SETFL and os.NewFile of the pidfd; no
//	  hand-off, no write to the watchdog.
//	closing the child's ends       13-17 µs   [before: 33] 3 close(2)
//	newStage                       50-66 µs   (before 57-75) [72-90, before 80-105]: 2 epoll_ctl on the
//	                                          readable waiter's set (stderr tail, pidfd) 30-50,
//	                                          the stage, stdin, stdout Stream, AfterFunc 20-40
//
// Everything after the fork runs while the child execs on the other core
// and the watchdog wakes up, and takes 2-4 times what it does alone (in a
// temporary benchmark: a pipe made, wrapped and closed 15 µs, one
// epoll_ctl 1.5-1.9 µs, getppid 1.1 µs).
//
// After the exit, Run of true, from stdout's end to Wait's return: 110-150
// µs (os/exec: Wait is one waitid, back when the child is reaped). The
// waiter goroutine wakes on the pidfd and starts supervise: wait4 45 µs,
// kill(-pgid, 0) 4 µs, release 38-60 µs (then with the watchdog's
// ForgetGroup write; now the pidfd's epoll_ctl DEL and close), streams and
// stdin 16-30 µs, closing Done and waking the caller 10-28 µs.
//
// System calls per Run of true, whole system (strace -f -c over 300 Runs,
// the child and the watchdog included): 203 against os/exec's 174 (266
// before issue 14; 240 with the cuts below and the fork thread still in
// use). Beyond os/exec: nanosleep 43 vs 26 and futex 10 vs 8 (futex was 23
// with the fork thread's hand-offs), epoll_pwait 5 vs 1.5, epoll_ctl 6 vs
// 3, read 5 vs 2, pipe2 3 vs 1 (stdout and the stderr tail); none for the
// watchdog any more (write 3 and getppid 2 before). Per Start+Wait:
// epoll_ctl 10 -> 6, fcntl 12 -> 7. CPU of the parent alone with the fork
// thread, getrusage over 400 Runs alternating with os/exec in blocks of 40:
// 1.2-1.3 ms per Run against 0.53-0.60 ms; most of the difference was the
// runtime's scheduler (futex, spinning threads) around the hand-offs.
//
// Cut in this round (issue 14): one fcntl per pipe (F_SETFL without
// F_GETFL); the stderr tail's pipe wrapped by os.NewFile, put on the
// poller and given a drainer Stream only once it has data (an empty one is
// just closed); the stdin pipe wrapped by the first Process.Write; the
// read-ahead channels of a Stream made by the first Request or C.
// Allocations per Run of true 134 -> 117 (12.7 -> 10.8 KB), per Start+Wait
// 131 -> 109. Tried and left out: supervising the child on the goroutine
// of a Wait that cannot be cancelled (Run's): the waiter goroutine, woken
// by the same exit, won the race most of the time, and the exit path
// measured the same (70-90 µs either way).
//
// Interleaved, netrunner time / os/exec time (lower is better), builds of
// before and after this round alternating, six runs each at load 2-25:
// Run of true 1.17, 1.02, 1.11, 1.07, 1.02, 1.02 before, 0.80, 1.10, 1.03,
// 1.09, 1.14, 0.95 after; Start alone 1.29, 1.08, 1.31, 1.16, 1.09, 1.14
// before, 1.03, 1.24, 1.28, 1.34, 1.22, 1.17 after. The 25-30 µs cut from
// Start's own steps is lost in the spawn's swings (0.9-1.6 ms between runs
// of the same build). The hand-offs to and from the fork thread, the
// watchdog's wake-up and the pidfd's wrapping (240-300 µs here) are what
// Start cost beyond os/exec then. With the children's cgroup, which removes
// them (five runs of the first command below at load 1-3): Run of true
// 0.98, 0.98, 1.00, 1.00, 0.99 times os/exec's speed; Start alone 1.02,
// 1.05, 0.98, 1.04, 0.95 times its time; 1, 8 and 64 Runs at once 0.99,
// 0.98-1.00 and 0.87-0.99 times os/exec's speed. Commands:
//
//	go test -run '^$' -bench 'Spawn/(interleaved|parallel)' -count 3 .
//	go test -run '^$' -bench 'Spawn/netrunner-run' -cpuprofile cpu.out .
//	go test -c -o nr.test . && strace -f -c -o calls.txt ./nr.test -test.run '^$' -test.bench 'Spawn/netrunner-run$' -test.benchtime 300x
//	go test -run '^$' -bench 'Spawn/netrunner-(run|start-wait)$' -benchmem .
//
// An idle process (BenchmarkIdle, 1000 × sleep 60, -benchtime 1x), per
// process: 2.7 KiB heap (4.8 before this round), 0 goroutines, 4 fds
// (stdin, stdout and stderr pipes, pidfd) with no consumer, 3.2 KiB heap
// with one parked in Next (5.2 before). os/exec with StdoutPipe: 0.8 KiB,
// 2 fds, 66 KiB with a parked Read (its buffer).
//
// The spawn cases of os/exec, each including exec.Command, which is where
// os/exec looks the program up in PATH (netrunner does it in Start).
func execStart(context.Context) (*exec.Cmd, error) {
	cmd := exec.Command("true")
	return cmd, cmd.Start()
}

func nrStartOnly(ctx context.Context) (*Process, error) { return Command("true").Start(ctx) }

// BenchmarkSpawn: Start+Wait of true, with the parent-death watchdog already
// running, against exec.Command("true").Run(). netrunner-run (Cmd.Run, no
// stdin pipe) is shown for reference. interleaved alternates the two within
// each op and reports each side's ns/spawn, so that both see the same load
// on a busy machine; interleaved-run does the same for Cmd.Run, and
// interleaved-start times Start alone (the Waits are outside the figures).
// parallel/N runs N spawns at once per op, N netrunner Runs then N os/exec
// Runs (alternating which side goes first), and reports each side's time
// per op.
func BenchmarkSpawn(b *testing.B) {
	for _, c := range []struct {
		name  string
		spawn func(context.Context) error
	}{{"netrunner-start-wait", nrSpawn}, {"netrunner-run", nrRunSpawn}, {"os-exec-run", execSpawn}} {
		b.Run(c.name, func(b *testing.B) {
			benchWarm(b)
			ctx := benchCtx(b)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := c.spawn(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("interleaved", func(b *testing.B) {
		benchWarm(b)
		benchInterleave(b, "spawn", benchCtx(b), nrSpawn, execSpawn)
	})
	b.Run("interleaved-run", func(b *testing.B) {
		benchWarm(b)
		benchInterleave(b, "run", benchCtx(b), nrRunSpawn, execSpawn)
	})
	b.Run("interleaved-start", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		var nrTime, baseTime time.Duration
		for i := range b.N {
			for side := range 2 {
				t0 := time.Now()
				if (i+side)%2 == 0 {
					p, err := nrStartOnly(ctx)
					nrTime += time.Since(t0)
					if err != nil {
						b.Fatal(err)
					}
					if err := p.Wait(ctx); err != nil {
						b.Fatal(err)
					}
					p.Stdout.Close()
				} else {
					cmd, err := execStart(ctx)
					baseTime += time.Since(t0)
					if err != nil {
						b.Fatal(err)
					}
					if err := cmd.Wait(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.ReportMetric(float64(nrTime.Nanoseconds())/float64(b.N), "netrunner-ns/start")
		b.ReportMetric(float64(baseTime.Nanoseconds())/float64(b.N), "os-exec-ns/start")
	})
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("parallel/%d", n), func(b *testing.B) {
			benchWarm(b)
			all := func(spawn func(context.Context) error) func(context.Context) error {
				return func(ctx context.Context) error {
					g, ctx := errgroup.WithContext(ctx)
					for range n {
						g.Go(func() error { return spawn(ctx) })
					}
					return g.Wait()
				}
			}
			benchInterleave(b, "op", benchCtx(b), all(nrRunSpawn), all(execSpawn))
		})
	}
}

// benchInterleave runs nr and base alternately, one call each per op, and
// reports the mean time of each as netrunner-ns/<what> and
// os-exec-ns/<what>.
func benchInterleave(b *testing.B, what string, ctx context.Context, nr, base func(context.Context) error) {
	var nrTime, baseTime time.Duration
	for i := range b.N {
		first, second, t1, t2 := nr, base, &nrTime, &baseTime
		if i%2 == 1 { // neither always goes first
			first, second, t1, t2 = base, nr, &baseTime, &nrTime
		}
		t0 := time.Now()
		if err := first(ctx); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := second(ctx); err != nil {
			b.Fatal(err)
		}
		*t1 += mid.Sub(t0)
		*t2 += time.Since(mid)
	}
	b.ReportMetric(float64(nrTime.Nanoseconds())/float64(b.N), "netrunner-ns/"+what)
	b.ReportMetric(float64(baseTime.Nanoseconds())/float64(b.N), "os-exec-ns/"+what)
}

// nrCat is a running cat for the round trip: trip writes one byte and
// reads it back.
func nrCat(b *testing.B, ctx context.Context) (trip func(context.Context) error, finish func()) {
	p := nrStart(b, ctx, []string{"cat"})
	msg := []byte{'x'}
	trip = func(ctx context.Context) error {
		if _, err := p.Write(ctx, msg); err != nil {
			return err
		}
		if chunk, err := p.Stdout.Next(ctx); err != nil || len(chunk) != 1 {
			return fmt.Errorf("Next: %q, %v", chunk, err)
		}
		return nil
	}
	return trip, func() {
		p.CloseStdin()
		n, err := nrNextAll(ctx, p.Stdout)
		nrFinish(b, ctx, p, n, 0, err)
	}
}

// execCat is nrCat with os/exec's StdinPipe and StdoutPipe.
func execCat(b *testing.B) (trip func(context.Context) error, finish func()) {
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
	trip = func(context.Context) error {
		if _, err := in.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(out, back)
		return err
	}
	return trip, func() {
		in.Close()
		n, err := io.Copy(io.Discard, out)
		execFinish(b, cmd, n, 0, err)
	}
}

// BenchmarkRoundTrip: one byte written to a running cat and read back, per
// op; interleaved as in BenchmarkSpawn.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("netrunner", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		trip, finish := nrCat(b, ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := trip(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		finish()
	})
	b.Run("os-exec", func(b *testing.B) {
		trip, finish := execCat(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := trip(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		finish()
	})
	b.Run("interleaved", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		nrTrip, nrDone := nrCat(b, ctx)
		execTrip, execDone := execCat(b)
		b.ResetTimer()
		benchInterleave(b, "trip", ctx, nrTrip, execTrip)
		b.StopTimer()
		nrDone()
		execDone()
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
// that is not a file (the copying loop) and into /dev/null (splice). allocs/chunk divides the mallocs during the loop by
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
	writeTo := func(b *testing.B, w io.Writer) {
		benchWarm(b)
		ctx := benchCtx(b)
		size := int64(b.N) * defaultChunkSize
		p := nrStart(b, ctx, smallWrites.argv(size))
		b.SetBytes(defaultChunkSize)
		b.ReportAllocs()
		mallocs := benchMallocs()
		b.ResetTimer()
		n, err := p.Stdout.WriteTo(w)
		b.StopTimer()
		mallocs = benchMallocs() - mallocs
		b.ReportMetric(float64(mallocs)/float64(max(p.Stats().Reads, 1)), "allocs/chunk")
		nrFinish(b, ctx, p, n, size, err)
	}
	b.Run("netrunner-writeto", func(b *testing.B) { writeTo(b, &benchSink{}) })
	b.Run("netrunner-writeto-devnull", func(b *testing.B) {
		// An *os.File: the splice path, where it exists.
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		writeTo(b, f)
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

// BenchmarkConcurrent: one op is 1000 processes started at once, each
// streaming 1 MiB to its own goroutine (errgroup).
func BenchmarkConcurrent(b *testing.B) {
	procs := benchProcs
	if testing.Short() {
		procs /= 10
	}
	argv := smallWrites.argv(benchPerProc)
	name := fmt.Sprintf("%dx1MiB/", procs)
	run := func(b *testing.B, one func() error) {
		b.SetBytes(int64(procs) * benchPerProc)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			var g errgroup.Group
			for range procs {
				g.Go(one)
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run(name+"netrunner-next", func(b *testing.B) {
		benchWarm(b)
		ctx := benchCtx(b)
		run(b, func() error {
			p, err := Command(argv[0], argv[1:]...).Start(ctx)
			if err != nil {
				return err
			}
			n, err := nrNextAll(ctx, p.Stdout)
			werr := p.Wait(ctx)
			p.Stdout.Close()
			return errors.Join(err, werr, benchCount(n, benchPerProc))
		})
	})
	b.Run(name+"os-exec-copy", func(b *testing.B) {
		run(b, func() error {
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
	b.Run("netrunner-next-background-ctx", func(b *testing.B) {
		// Next with a context that never ends, which costs nothing per
		// read: what the heap is without per-read garbage.
		benchWarm(b)
		ctx := benchCtx(b)
		measure(b, func() error {
			p := nrStart(b, ctx, argv)
			n, err := nrNextAll(context.Background(), p.Stdout)
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

// benchIdleProcs is how many idle processes one op of BenchmarkIdle keeps.
const benchIdleProcs = 1000

// benchUsage is what the test process holds: live heap, goroutine stacks,
// goroutines and descriptors.
type benchUsage struct {
	heap, stack, goroutines, fds int64
}

// benchUsageNow measures the heap after a GC: what is live, not garbage.
// The second GC empties what sync.Pools kept through the first.
func benchUsageNow(b *testing.B) benchUsage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ents, err := os.ReadDir("/dev/fd")
	if err != nil {
		b.Fatal(err)
	}
	return benchUsage{heap: int64(ms.HeapAlloc), stack: int64(ms.StackInuse), goroutines: int64(runtime.NumGoroutine()), fds: int64(len(ents))}
}

// BenchmarkIdle: what 1000 started `sleep 60` processes cost while they
// write nothing, per process: live heap, goroutine stacks, goroutines and
// descriptors. The parked variants add one consumer goroutine per process
// waiting for output: in Stream.Next, and in a Read of os/exec's StdoutPipe
// with a buffer of the default ChunkSize (os/exec needs the caller's buffer
// to wait). The os/exec side is exec.Command with StdoutPipe, which is what
// reading a child's output as it comes takes there.
func BenchmarkIdle(b *testing.B) {
	procs := benchIdleProcs
	if testing.Short() {
		procs /= 10
	}
	measure := func(b *testing.B, startAll func(n int, parked *sync.WaitGroup) (stop func())) {
		b.ReportAllocs()
		var d benchUsage
		for range b.N {
			var parked sync.WaitGroup
			before := benchUsageNow(b)
			stop := startAll(procs, &parked)
			// Every consumer is about to park; give them the time to.
			parked.Wait()
			time.Sleep(100 * time.Millisecond)
			after := benchUsageNow(b)
			stop()
			d = benchUsage{
				heap: after.heap - before.heap, stack: after.stack - before.stack,
				goroutines: after.goroutines - before.goroutines, fds: after.fds - before.fds,
			}
		}
		b.ReportMetric(float64(d.heap)/float64(procs), "heap-B/proc")
		b.ReportMetric(float64(d.stack)/float64(procs), "stack-B/proc")
		b.ReportMetric(float64(d.heap+d.stack)/float64(procs), "mem-B/proc")
		b.ReportMetric(float64(d.goroutines)/float64(procs), "goroutines/proc")
		b.ReportMetric(float64(d.fds)/float64(procs), "fds/proc")
	}
	nr := func(consume bool) func(b *testing.B) {
		return func(b *testing.B) {
			benchWarm(b)
			ctx := benchCtx(b)
			measure(b, func(n int, parked *sync.WaitGroup) func() {
				ps := make([]*Process, 0, n)
				var consumers sync.WaitGroup
				for range n {
					p := nrStart(b, ctx, []string{"sleep", "60"})
					ps = append(ps, p)
					if consume {
						parked.Add(1)
						consumers.Add(1)
						go func() {
							defer consumers.Done()
							parked.Done()
							p.Stdout.Next(ctx)
						}()
					}
				}
				return func() {
					for _, p := range ps {
						p.Kill()
					}
					for _, p := range ps {
						<-p.Done()
					}
					consumers.Wait()
					for _, p := range ps {
						p.Stdout.Close()
					}
				}
			})
		}
	}
	ex := func(consume bool) func(b *testing.B) {
		return func(b *testing.B) {
			measure(b, func(n int, parked *sync.WaitGroup) func() {
				cmds := make([]*exec.Cmd, 0, n)
				var consumers sync.WaitGroup
				for range n {
					cmd, out := execPipe(b, []string{"sleep", "60"})
					cmds = append(cmds, cmd)
					if consume {
						parked.Add(1)
						consumers.Add(1)
						go func() {
							defer consumers.Done()
							parked.Done()
							out.Read(make([]byte, defaultChunkSize))
						}()
					}
				}
				return func() {
					for _, cmd := range cmds {
						cmd.Process.Kill()
					}
					consumers.Wait()
					for _, cmd := range cmds {
						cmd.Wait()
					}
				}
			})
		}
	}
	b.Run("netrunner", nr(false))
	b.Run("netrunner-parked-next", nr(true))
	b.Run("os-exec", ex(false))
	b.Run("os-exec-parked-read", ex(true))
}
