// Command heapplot draws the Go heap over time while a fast producer feeds a
// slow consumer, read two ways: os/exec copying the child's stdout into a
// bytes.Buffer that the consumer drains, and netrunner's Stream.Next loop.
// It writes an SVG to stdout; the README's picture is made with
//
//	go run ./examples/heapplot > docs/heap.svg
//
// The producer is `head -c SIZE /dev/zero`, which writes as fast as its pipe
// takes data; the consumer handles -rate bytes per second. os/exec reads
// whatever the child writes, as soon as it writes it, so the buffer holds
// everything the consumer has not got to yet. netrunner reads a chunk only
// when the consumer asks for one, so the producer waits in write(2) and the
// heap stays where it started.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"

	"github.com/netrunner-go/netrunner"
)

func main() {
	size := flag.Int64("size", 1<<30, "bytes the producer writes")
	rate := flag.Int64("rate", 128<<20, "bytes per second the consumer handles")
	every := flag.Duration("every", 20*time.Millisecond, "time between heap samples")
	flag.Parse()
	if *size <= 0 || *rate <= 0 || *every <= 0 {
		log.Fatal("heapplot: -size, -rate and -every must be positive")
	}
	argv := []string{"head", "-c", strconv.FormatInt(*size, 10), "/dev/zero"}

	var series []series
	for _, run := range []struct {
		label string
		read  func(argv []string, c *consumer) error
	}{
		{"os/exec, Stdout into a bytes.Buffer", readExec},
		{"netrunner, Stream.Next loop", readNetrunner},
	} {
		runtime.GC() // both start from the same heap
		c := &consumer{rate: *rate, start: time.Now()}
		stop := sample(c.start, *every)
		err := run.read(argv, c)
		s := stop()
		if err == nil && c.total != *size {
			err = fmt.Errorf("consumed %d bytes, want %d", c.total, *size)
		}
		if err != nil {
			log.Fatalf("heapplot: %s: %v", run.label, err)
		}
		s.label = run.label
		series = append(series, s)
		log.Printf("%s: %d MiB in %.1fs, heap peak %.1f MiB", run.label, *size>>20, s.end(), s.peak())
	}
	title := fmt.Sprintf("Go heap while `head -c %d MiB /dev/zero` feeds a consumer of %d MiB/s", *size>>20, *rate>>20)
	os.Stdout.Write(plot(title, series))
}

// A consumer handles data at a fixed rate, as a slow parser, database or
// network peer would: it sleeps until its budget allows each chunk.
type consumer struct {
	rate  int64
	start time.Time
	total int64
}

func (c *consumer) consume(b []byte) {
	c.total += int64(len(b))
	due := c.start.Add(time.Duration(float64(c.total) / float64(c.rate) * float64(time.Second)))
	time.Sleep(time.Until(due))
}

const chunk = 64 << 10

// readExec is the usual os/exec pattern: Stdout is a bytes.Buffer (guarded,
// so the consumer can drain it meanwhile), filled by os/exec's copying
// goroutine as fast as the child writes.
func readExec(argv []string, c *consumer) error {
	buf := &lockedBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = buf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	p := make([]byte, chunk)
	var waitErr error
	exited := false
	for {
		n := buf.Read(p)
		if n > 0 {
			c.consume(p[:n])
			continue
		}
		if exited {
			return waitErr
		}
		select {
		case waitErr = <-done:
			exited = true
		case <-time.After(time.Millisecond):
		}
	}
}

// readNetrunner reads a chunk only when the consumer is ready for it.
func readNetrunner(argv []string, c *consumer) error {
	ctx := context.Background()
	p, err := netrunner.Command(argv[0], argv[1:]...).Start(ctx)
	if err != nil {
		return err
	}
	defer p.Stdout.Close()
	for {
		b, err := p.Stdout.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			p.Stop(ctx)
			return err
		}
		c.consume(b)
	}
	return p.Wait(ctx)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Read(p []byte) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, _ := l.b.Read(p)
	return n
}

// A series is one line of the plot: seconds since its run started, and the
// heap in MiB then.
type series struct {
	label  string
	t, mib []float64
}

func (s series) end() float64 { return s.t[len(s.t)-1] }

func (s series) peak() float64 {
	var most float64
	for _, v := range s.mib {
		most = max(most, v)
	}
	return most
}

// heapMetric is the heap's allocated objects, live or not yet swept: what
// runtime.MemStats.HeapAlloc reports, read without stopping the world.
const heapMetric = "/memory/classes/heap/objects:bytes"

// sample records the heap every interval until stop is called; stop returns
// what it saw. A long straight stretch in a line is a time when the sampler
// could not run: the whole program was held up, typically while the
// runtime waited for a large buffer to be copied.
func sample(start time.Time, every time.Duration) (stop func() series) {
	var s series
	quit, done := make(chan struct{}), make(chan struct{})
	m := []metrics.Sample{{Name: heapMetric}}
	record := func() {
		metrics.Read(m)
		s.t = append(s.t, time.Since(start).Seconds())
		s.mib = append(s.mib, float64(m[0].Value.Uint64())/(1<<20))
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			record()
			select {
			case <-quit:
				record()
				return
			case <-tick.C:
			}
		}
	}()
	return func() series {
		close(quit)
		<-done
		return s
	}
}
