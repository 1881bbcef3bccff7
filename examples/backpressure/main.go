// Command backpressure shows a fast producer held back by a slow consumer.
//
// It runs `yes`, which writes as fast as the kernel lets it, and reads its
// output slowly for a while, then at full speed. The progress line shows the
// bytes consumed, the bytes the producer has written (its wchar, from
// /proc/PID/io on Linux) and the Go heap. Nothing is read from the pipe until
// the consumer asks, so `yes` sits blocked in write(2), never more than a pipe
// buffer ahead, and the heap stays flat whatever the speed. (The pipe starts
// at the kernel's 64 KiB; netrunner raises it to 1 MiB once reads keep
// finding it full, so "ahead" settles at 1 MiB.)
//
//	go run ./examples/backpressure
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/netrunner-go/netrunner"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	// Cancelling ctx (Ctrl-C) would stop yes too: Start ties the process to it.
	p, err := netrunner.Command("yes").Start(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("producer: yes, pid %d\n", p.Pid())

	d := &demo{p: p}
	summaries := []string{d.phase(ctx, "slow", 12*time.Second, 5*time.Millisecond)}
	if ctx.Err() == nil {
		summaries = append(summaries, d.phase(ctx, "fast", 4*time.Second, 0))
	}

	// Stop sends SIGTERM to yes's process group and returns once it is reaped;
	// its error is Wait's, so dying of that SIGTERM is the expected outcome.
	err = p.Stop(context.Background())
	var exit *netrunner.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.Signal == syscall.SIGTERM) {
		log.Fatal(err)
	}
	fmt.Println("producer stopped with SIGTERM and reaped")
	for _, s := range summaries {
		fmt.Println(s)
	}
}

type demo struct {
	p        *netrunner.Process
	consumed int64 // over all phases, to compare with the producer's total
}

// phase consumes for dur, sleeping pause after each chunk to play a slow
// consumer, and redraws one progress line in place.
func (d *demo) phase(ctx context.Context, name string, dur, pause time.Duration) string {
	start := time.Now()
	var n int64
	var lastRedraw time.Time // zero: the first chunk draws at once
	maxAhead := int64(-1)    // stays -1 where wchar is not available
	minHeap, maxHeap := ^uint64(0), uint64(0)
	for time.Since(start) < dur {
		chunk, err := d.p.Stdout.Next(ctx)
		if err != nil {
			break // Ctrl-C, or yes is gone
		}
		n += int64(len(chunk))
		d.consumed += int64(len(chunk))
		if pause > 0 {
			time.Sleep(pause)
		}
		// ReadMemStats stops the world: sample a few times a second only.
		if time.Since(lastRedraw) < 200*time.Millisecond {
			continue
		}
		lastRedraw = time.Now()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		minHeap, maxHeap = min(minHeap, ms.HeapInuse), max(maxHeap, ms.HeapInuse)
		// Sampled between two Next calls, so written-consumed is exactly what
		// sits in the pipe: the most the producer can get ahead.
		written, ahead := "n/a", "n/a"
		if w := wchar(d.p.Pid()); w >= 0 {
			maxAhead = max(maxAhead, w-d.consumed)
			written, ahead = size(w), size(w-d.consumed)
		}
		fmt.Printf("\r%s  consumed %10s  written %10s  ahead %9s  heap %9s  %10s/s ",
			name, size(d.consumed), written, ahead, size(int64(ms.HeapInuse)), rate(n, start))
	}
	fmt.Println()
	ahead := "n/a (no /proc/PID/io)"
	if maxAhead >= 0 {
		ahead = size(maxAhead)
	}
	return fmt.Sprintf("%s: consumed %s in %.1fs (%s/s); producer at most %s ahead; heap %s to %s",
		name, size(n), time.Since(start).Seconds(), rate(n, start), ahead,
		size(int64(minHeap)), size(int64(maxHeap)))
}

// wchar returns the bytes pid has passed to write(2) so far, or -1 where
// /proc/PID/io does not exist (anything but Linux).
func wchar(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return -1
	}
	_, v, ok := bytes.Cut(b, []byte("wchar: "))
	v, _, _ = bytes.Cut(v, []byte("\n"))
	n, err := strconv.ParseInt(string(v), 10, 64)
	if !ok || err != nil {
		return -1
	}
	return n
}

func rate(n int64, since time.Time) string {
	return size(int64(float64(n) / time.Since(since).Seconds()))
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
