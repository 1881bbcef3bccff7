//go:build linux

package netrunner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A producer nobody reads from is held back by the pipe: its write(2)
// blocks, so the bytes it managed to write stay around the pipe's size, and
// nothing is read from the pipe before the consumer asks.
func TestStreamBackpressure(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  func() *Cmd
		// most the producer may write with nobody reading
		bound int64
	}{
		{"yes", func() *Cmd { return Command("yes") }, 1 << 20},
		{"head-zero", func() *Cmd { return Command("head", "-c", "1G", "/dev/zero") }, 1 << 20},
		{"yes-pipe-1MiB", func() *Cmd {
			c := Command("yes")
			c.PipeSize = 1 << 20
			return c
		}, 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c := tc.cmd()
			p := start(t, ctx, c)
			w := stableWchar(t, p.Pid())
			if w > tc.bound {
				t.Fatalf("producer wrote %d bytes with nobody reading; want <= %d", w, tc.bound)
			}
			if c.PipeSize == 1<<20 && w < 512<<10 {
				t.Errorf("PipeSize 1 MiB: producer blocked after %d bytes; the pipe was not enlarged", w)
			}
			if got := p.Stats().BytesOut; got != 0 {
				t.Errorf("Stats().BytesOut = %d before any demand; want 0 (nothing read without demand)", got)
			}

			// Consuming lets it go on, and it is held back again after.
			var read int64
			for read < 8<<20 {
				b, err := p.Stdout.Next(ctx)
				if err != nil {
					t.Fatalf("Next after %d bytes: %v", read, err)
				}
				read += int64(len(b))
			}
			w2 := stableWchar(t, p.Pid())
			if w2 < read {
				t.Fatalf("wchar %d < %d bytes read", w2, read)
			}
			// A stream that ran hot may have had its pipe enlarged (up to
			// 1 MiB, the kernel's default pipe-max-size): allow for that.
			if bound := max(tc.bound, 2<<20); w2-read > bound {
				t.Fatalf("after reading %d bytes the producer wrote %d: %d ahead; want <= %d", read, w2, w2-read, bound)
			}
			if got := p.Stats().BytesOut; got != read {
				t.Errorf("Stats().BytesOut = %d; want %d (the bytes handed out by Next)", got, read)
			}
		})
	}
}

// Request(3) delivers exactly 3 chunks on C, and no 4th before more demand.
func TestStreamRequestExact(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("yes"))
	s := p.Stdout
	stableWchar(t, p.Pid()) // the pipe is full: there is always a 4th chunk to read

	recv := func(i int) int64 {
		t.Helper()
		select {
		case b, ok := <-s.C():
			if !ok {
				t.Fatalf("chunk %d: C closed; Err = %v", i, s.Err())
			}
			if len(b) == 0 || len(b) > 64<<10 {
				t.Fatalf("chunk %d has %d bytes; want 1..64 KiB", i, len(b))
			}
			if strings.Trim(string(b), "y\n") != "" {
				t.Fatalf("chunk %d does not look like yes output: %q", i, b[:min(len(b), 16)])
			}
			return int64(len(b))
		case <-time.After(10 * time.Second):
			t.Fatalf("chunk %d not delivered within 10s of Request", i)
		}
		return 0
	}
	nothingMore := func(after string) {
		t.Helper()
		select {
		case b, ok := <-s.C():
			t.Fatalf("after %s: got another chunk (%d bytes, open=%v) without demand", after, len(b), ok)
		case <-time.After(200 * time.Millisecond):
		}
	}

	s.Request(3)
	var n int64
	for i := 1; i <= 3; i++ {
		n += recv(i)
	}
	nothingMore("3 chunks for Request(3)")
	if got := p.Stats().BytesOut; got != n {
		t.Errorf("Stats().BytesOut = %d after 3 chunks of %d bytes in all: data was read without demand", got, n)
	}
	// The producer refilled the pipe and is blocked again: nothing more is read.
	w := stableWchar(t, p.Pid())
	if w-n > 2<<20 { // a pipe enlarged for a hot stream holds up to 1 MiB
		t.Errorf("producer %d bytes ahead of the %d delivered", w-n, n)
	}

	s.Request(1)
	n += recv(4)
	nothingMore("1 chunk for Request(1)")
	if got := p.Stats().BytesOut; got != n {
		t.Errorf("Stats().BytesOut = %d after 4 chunks of %d bytes in all", got, n)
	}
}

// Streaming a gigabyte through Next keeps the Go heap flat.
func TestStreamHeapFlatNext(t *testing.T) {
	const total = 1 << 30
	ctx := testCtx(t)
	p := start(t, ctx, Command("head", "-c", strconv.Itoa(total), "/dev/zero"))

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	var got, next int64
	for {
		b, err := p.Stdout.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next after %d bytes: %v", got, err)
		}
		got += int64(len(b))
		if got >= next {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			next += 16 << 20
		}
	}
	if got != total {
		t.Fatalf("read %d bytes; want %d", got, total)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	const bound = 2*64<<10 + 8<<20
	if grew := int64(peak) - int64(base); grew > bound {
		t.Errorf("heap in use grew by %d bytes while streaming %d; want <= %d", grew, total, bound)
	}
}

// Streaming through Request/C with a fixed outstanding demand keeps the
// live heap bounded by that demand.
func TestStreamHeapFlatDemand(t *testing.T) {
	const total = 256 << 20
	const demand = 8
	ctx := testCtx(t)
	p := start(t, ctx, Command("head", "-c", strconv.Itoa(total), "/dev/zero"))
	s := p.Stdout

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	var got, next int64
	s.Request(demand)
	for b := range s.C() {
		got += int64(len(b))
		s.Request(1)
		if got >= next {
			// Each chunk on C is the receiver's to keep, so a fresh buffer:
			// garbage the GC paces. What must stay bounded is what is live.
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			next += 16 << 20
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after C closed: %v", err)
	}
	if got != total {
		t.Fatalf("read %d bytes; want %d", got, total)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	const bound = (demand+2)*64<<10 + 4<<20
	if grew := int64(peak) - int64(base); grew > bound {
		t.Errorf("live heap grew by %d bytes while streaming %d with demand %d; want <= %d", grew, total, demand, bound)
	}
}

// A blocked Next returns promptly with its context's error, and the Stream
// stays usable.
func TestStreamNextContext(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("cat"))
	s := p.Stdout

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	t0 := time.Now()
	b, err := s.Next(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with an expiring context = %q, %v; want context.DeadlineExceeded", b, err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Next returned %v after its context's deadline of 100ms", d)
	}

	cctx, ccancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, ccancel)
	if b, err := s.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a cancelled context = %q, %v; want context.Canceled", b, err)
	}
	// Already done before the call.
	if b, err := s.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a context cancelled before = %q, %v; want context.Canceled", b, err)
	}

	// Still usable.
	if _, err := p.Write(ctx, []byte("hello\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	var got []byte
	for !bytes.HasSuffix(got, []byte("\n")) {
		b, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next after the cancelled ones: %q, %v", got, err)
		}
		got = append(got, b...)
	}
	if string(got) != "hello\n" {
		t.Fatalf("got %q; want %q", got, "hello\n")
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	if b, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("Next at the end = %q, %v; want io.EOF", b, err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// WriteTo (io.Copy) and Read, also with small buffers, pass the data
// through unchanged.
func TestStreamReadWriteTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func(t *testing.T, s *Stream) []byte
	}{
		{"io.Copy", func(t *testing.T, s *Stream) []byte {
			var buf bytes.Buffer
			n, err := io.Copy(&buf, s)
			if err != nil || n != int64(buf.Len()) {
				t.Fatalf("io.Copy = %d, %v (buffer has %d)", n, err, buf.Len())
			}
			return buf.Bytes()
		}},
		{"WriteTo-pipe", func(t *testing.T, s *Stream) []byte {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			got := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(pr)
				got <- b
			}()
			n, err := s.WriteTo(pw)
			pw.Close()
			b := <-got
			if err != nil || n != int64(len(b)) {
				t.Fatalf("WriteTo(pipe) = %d, %v (%d arrived)", n, err, len(b))
			}
			return b
		}},
		{"WriteTo-file", func(t *testing.T, s *Stream) []byte {
			f, err := os.CreateTemp(t.TempDir(), "out")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n, err := s.WriteTo(f)
			if err != nil {
				t.Fatalf("WriteTo(file) = %d, %v", n, err)
			}
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(b)) {
				t.Fatalf("WriteTo(file) = %d; the file has %d", n, len(b))
			}
			return b
		}},
		{"ReadAll", func(t *testing.T, s *Stream) []byte {
			b, err := io.ReadAll(onlyReader{s})
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			return b
		}},
		{"Read-7", func(t *testing.T, s *Stream) []byte {
			var out []byte
			buf := make([]byte, 7)
			for {
				n, err := s.Read(buf)
				if n < 0 || n > len(buf) {
					t.Fatalf("Read = %d", n)
				}
				out = append(out, buf[:n]...)
				if err == io.EOF {
					return out
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := pattern(1_000_000)
			if tc.name == "Read-7" {
				data = data[:100_000] // a syscall per 7 bytes
			}
			ctx := testCtx(t)
			c := Command("cat")
			c.Stdin = bytes.NewReader(data)
			p := start(t, ctx, c)
			got := tc.read(t, p.Stdout)
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, differing from the %d sent (first difference at %d)", len(got), len(data), firstDiff(got, data))
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if n, err := p.Stdout.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Errorf("Read after the end = %d, %v; want 0, io.EOF", n, err)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// After a clean end Next says io.EOF (again and again), Err is nil and C is
// closed.
func TestStreamCleanEnd(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("printf", "abc"))
	s := p.Stdout
	var got []byte
	for {
		b, err := s.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, b...)
	}
	if string(got) != "abc" {
		t.Fatalf("got %q; want abc", got)
	}
	if b, err := s.Next(ctx); err != io.EOF {
		t.Errorf("Next again after the end = %q, %v; want io.EOF", b, err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after a clean end = %v; want nil", err)
	}
	select {
	case b, ok := <-s.C():
		if ok {
			t.Errorf("C delivered %q after the end", b)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("C not closed after Next reached the end")
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// Consuming through C: every byte, then C closed and Err nil.
func TestStreamCEnd(t *testing.T) {
	ctx := testCtx(t)
	c := Command("head", "-c", "1000000", "/dev/zero")
	c.ChunkSize = 1000
	p := start(t, ctx, c)
	s := p.Stdout
	s.Request(1 << 20) // far more than there is
	var n, chunks int
	timeout := time.After(20 * time.Second)
loop:
	for {
		select {
		case b, ok := <-s.C():
			if !ok {
				break loop
			}
			if len(b) == 0 || len(b) > 1000 {
				t.Fatalf("chunk of %d bytes; ChunkSize is 1000", len(b))
			}
			n += len(b)
			chunks++
		case <-timeout:
			t.Fatalf("C not closed after 20s (%d bytes)", n)
		}
	}
	if n != 1000000 {
		t.Fatalf("received %d bytes; want 1000000", n)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err = %v; want nil", err)
	}
	if chunks < 1000 {
		t.Fatalf("%d chunks for 1000000 bytes with ChunkSize 1000", chunks)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// Chunks never exceed ChunkSize.
func TestStreamChunkSize(t *testing.T) {
	ctx := testCtx(t)
	c := Command("head", "-c", "100000", "/dev/zero")
	c.ChunkSize = 7
	p := start(t, ctx, c)
	var n int
	for {
		b, err := p.Stdout.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b) > 7 {
			t.Fatalf("chunk of %d bytes with ChunkSize 7", len(b))
		}
		n += len(b)
	}
	if n != 100000 {
		t.Fatalf("read %d bytes; want 100000", n)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// After Close, Next and Read return an error wrapping os.ErrClosed.
func TestStreamClose(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("yes"))
	s := p.Stdout
	if _, err := s.Next(ctx); err != nil {
		t.Fatalf("Next: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if b, err := s.Next(ctx); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Next after Close = %d bytes, %v; want os.ErrClosed", len(b), err)
	}
	if n, err := s.Read(make([]byte, 10)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close = %d, %v; want os.ErrClosed", n, err)
	}
	s.Close() // twice: no panic
	select {
	case _, ok := <-s.C():
		if ok {
			t.Errorf("C delivered a chunk after Close")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("C not closed after Close")
	}
	// The producer is not left blocked forever on a pipe nobody reads.
	if err := p.Stop(ctx); err == nil {
		t.Errorf("yes ended with success after Stop")
	}
}

// escapedScript runs escape (a command) in a session of its own with setsid,
// holding stdout, and exits only once the escape is complete (the escaped
// process has written its pid to pidfile), so that it is not caught in the
// group's cleanup before it got away.
func escapedScript(t *testing.T, escape string) (*Cmd, string) {
	t.Helper()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	c := sh(`echo escaped; setsid sh -c 'echo $$ > ` + pidfile + `; exec ` + escape + `' & while [ ! -s ` + pidfile + ` ]; do sleep 0.01; done`)
	c.KillTimeout = 300 * time.Millisecond
	return c, pidfile
}

// The stream ends once the process has exited and its group is gone, even
// while a descendant that escaped the group with setsid holds the pipe.
func TestStreamEndsDespiteEscapedHolder(t *testing.T) {
	ctx := testCtx(t)
	c, pidfile := escapedScript(t, "sleep 1000")
	p := start(t, ctx, c)
	var out []byte
	var err error
	within(t, 10*time.Second, "reading stdout held by an escaped grandchild", func() {
		out, err = io.ReadAll(p.Stdout)
	})
	if err != nil || string(out) != "escaped\n" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	b, _ := os.ReadFile(pidfile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || isDead(pid) {
		t.Logf("the escaped sleep %q is dead", b)
	}
}

// A descendant that escaped the group and keeps writing into the pipe: once
// the process and its group are gone, the Stream delivers what the pipe
// held then and ends; it does not go on reading the escaped writer's output
// (which could go on forever, and fill memory in Run).
func TestStreamEndsDespiteEscapedWriter(t *testing.T) {
	for _, tc := range []struct {
		name          string
		readAll, slow bool
	}{
		{"read-after-Done", false, false},
		{"read-throughout", true, false},
		// A consumer that does some work per chunk (1 ms): the escaped
		// writer refills the pipe between its reads.
		{"slow-reader-after-Done", false, true},
	} {
		readAll := tc.readAll
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, _ := escapedScript(t, "yes")
			p := start(t, ctx, c)
			var total, atDone atomic.Int64
			atDone.Store(-1)
			copied := make(chan error, 1)
			read := func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := p.Stdout.Read(buf)
					total.Add(int64(n))
					if tc.slow {
						time.Sleep(time.Millisecond)
					}
					if err != nil {
						if err == io.EOF {
							err = nil
						}
						copied <- err
						return
					}
				}
			}
			if readAll {
				go read()
			}
			select {
			case <-p.Done():
				atDone.Store(total.Load())
			case <-time.After(10 * time.Second):
				t.Fatal("Done not closed 10s after the shell exited")
			}
			if !readAll {
				go read()
			}
			select {
			case err := <-copied:
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("stdout still delivering 5s after the process and its group were gone (%d bytes since)", total.Load()-atDone.Load())
			}
			after := total.Load() - atDone.Load()
			t.Logf("%d bytes in all, %d of them after Done", total.Load(), after)
			if after > 4<<20 {
				t.Errorf("read %d bytes after the process and its group were gone; want about what the pipe held (64 KiB)", after)
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("Wait: %v", err)
			}
		})
	}
}

// StderrStream gives a second demand-driven Stream; both can be read at once.
func TestStreamStderrStream(t *testing.T) {
	ctx := testCtx(t)
	c := sh(`head -c 300000 /dev/zero | tr '\0' e >&2; head -c 300000 /dev/zero | tr '\0' o`)
	c.Stderr = StderrStream
	p := start(t, ctx, c)
	if p.Stderr == nil {
		t.Fatal("Process.Stderr is nil with StderrStream")
	}
	errc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(p.Stderr)
		errc <- b
	}()
	out, err := io.ReadAll(p.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	serr := <-errc
	if len(out) != 300000 || strings.Trim(string(out), "o") != "" {
		t.Errorf("stdout: %d bytes, want 300000 'o'", len(out))
	}
	if len(serr) != 300000 || strings.Trim(string(serr), "e") != "" {
		t.Errorf("stderr: %d bytes, want 300000 'e'", len(serr))
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.BytesOut != 300000 || st.BytesErr != 300000 {
		t.Errorf("Stats: BytesOut %d, BytesErr %d; want 300000 each", st.BytesOut, st.BytesErr)
	}
}

// Without StderrStream, Process.Stderr is nil.
func TestStreamStderrNilByDefault(t *testing.T) {
	ctx := testCtx(t)
	for _, mode := range []StderrMode{StderrTail, StderrToStdout, StderrDiscard} {
		c := Command("true")
		c.Stderr = mode
		p := start(t, ctx, c)
		if p.Stderr != nil {
			t.Errorf("mode %d: Process.Stderr is not nil", mode)
		}
		if p.Stdout == nil {
			t.Fatalf("mode %d: Process.Stdout is nil", mode)
		}
		if err := p.Wait(ctx); err != nil {
			t.Errorf("mode %d: Wait: %v", mode, err)
		}
	}
}

// The end of a Stream is the end of its pipe, while the child may still run.
func TestStreamEndBeforeExit(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, sh("echo hi; exec >&-; read x; exit 2"))
	var out []byte
	var err error
	within(t, 10*time.Second, "reading a stdout the child closed", func() { out, err = io.ReadAll(p.Stdout) })
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the child waits for input")
	default:
	}
	if _, err := p.Write(ctx, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if ee := exitErr(t, p.Wait(ctx)); ee.Code != 2 {
		t.Errorf("Wait = %v; want exit 2", ee)
	}
}

// StderrToStdout: one pipe, both streams in order.
func TestStreamStderrToStdout(t *testing.T) {
	ctx := testCtx(t)
	c := sh("echo 1; echo 2 >&2; echo 3")
	c.Stderr = StderrToStdout
	p := start(t, ctx, c)
	out, err := io.ReadAll(p.Stdout)
	if err != nil || string(out) != "1\n2\n3\n" {
		t.Errorf("stdout = %q, %v", out, err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Error(err)
	}
}

// Request with n <= 0 does nothing; C is one channel.
func TestStreamRequestEdge(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("printf", "abc"))
	s := p.Stdout
	if first, second := s.C(), s.C(); first != second {
		t.Error("C returns different channels")
	}
	s.Request(0)
	s.Request(-5)
	select {
	case b, ok := <-s.C():
		t.Fatalf("C delivered %q (open=%v) without demand", b, ok)
	case <-time.After(200 * time.Millisecond):
	}
	s.Request(math.MaxInt) // no overflow trouble
	var got []byte
	for b := range s.C() {
		got = append(got, b...)
	}
	if string(got) != "abc" || s.Err() != nil {
		t.Errorf("got %q, Err %v", got, s.Err())
	}
}

// Data still in the pipe after the process is gone is delivered, then EOF.
func TestStreamReadAfterExit(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("head", "-c", "10000", "/dev/zero"))
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed though the output fits the pipe")
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(p.Stdout)
	if err != nil || len(out) != 10000 {
		t.Fatalf("ReadAll after exit = %d bytes, %v; want 10000", len(out), err)
	}
}

// Requested chunks not yet received when the process ends stay on C.
func TestStreamRequestedAfterExit(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("printf", "abc"))
	p.Stdout.Request(5)
	<-p.Done()
	var got []byte
	within(t, 5*time.Second, "receiving the requested chunks", func() {
		for b := range p.Stdout.C() {
			got = append(got, b...)
		}
	})
	if string(got) != "abc" || p.Stdout.Err() != nil {
		t.Errorf("got %q, Err %v", got, p.Stdout.Err())
	}
}

// Close while the read-ahead waits on a silent pipe: C is closed, Err says
// the Stream was closed.
func TestStreamCloseWithDemand(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	s := p.Stdout
	s.Request(5)
	time.Sleep(20 * time.Millisecond) // let the read-ahead park (not needed for correctness)
	s.Close()
	within(t, 5*time.Second, "C to close after Close", func() {
		for b := range s.C() {
			t.Errorf("C delivered %q", b)
		}
	})
	if err := s.Err(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Err after Close = %v; want os.ErrClosed", err)
	}
}

// A read cut short by its context leaves nothing behind for the next read,
// whatever context that one has, even one that can never end.
func TestStreamNextAfterCancelThenBackground(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sh", "-c", "read x; echo late"))
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Stdout.Next(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a cancelled context = %v; want context.Canceled", err)
	}
	blocked, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := p.Stdout.Next(blocked); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with an expiring context = %v; want DeadlineExceeded", err)
	}
	if _, err := p.Write(ctx, []byte("go\n")); err != nil {
		t.Fatal(err)
	}
	b, err := p.Stdout.Next(context.Background())
	if err != nil || string(b) != "late\n" {
		t.Fatalf("Next with Background after an expired context = %q, %v; want \"late\\n\"", b, err)
	}
}

// slowWriter takes each write after a pause, and counts what arrives after
// done is closed.
type slowWriter struct {
	pause       time.Duration
	done        <-chan struct{}
	total, late atomic.Int64
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.pause)
	w.total.Add(int64(len(p)))
	select {
	case <-w.done:
		w.late.Add(int64(len(p)))
	default:
	}
	return len(p), nil
}

// WriteTo reads under the context the process was started with: when it
// ends, WriteTo returns its error promptly, without delivering what the
// pipe still holds, nor what a child that takes its time to stop writes.
func TestWriteToStopsAtStartContext(t *testing.T) {
	for _, dest := range []string{"copy", "splice"} {
		t.Run(dest, func(t *testing.T) {
			check := leakCheck(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			// cat keeps writing through SIGTERM: the grace period is long.
			c := sh(`trap "" TERM; exec cat /dev/zero`)
			c.KillTimeout = 2 * time.Second
			p := start(t, ctx, c)
			sw := &slowWriter{pause: 5 * time.Millisecond, done: ctx.Done()}
			var w io.Writer = sw
			closeDest := func() {}
			if dest == "splice" {
				// A kernel pipe that a slow goroutine drains.
				r, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				drained := make(chan struct{})
				go func() {
					defer close(drained)
					io.CopyBuffer(sw, r, make([]byte, 64<<10))
				}()
				closeDest = func() { pw.Close(); <-drained; r.Close() }
				defer closeDest()
				w = pw
			}
			var n int64
			var err error
			within(t, 20*time.Second, "WriteTo past the Start context", func() { n, err = p.Stdout.WriteTo(w) })
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WriteTo = %d, %v; want an error matching context.DeadlineExceeded", n, err)
			}
			if !strings.Contains(err.Error(), "exec cat /dev/zero': stdout: ") {
				t.Errorf("WriteTo error %q does not name the stream", err)
			}
			p.Stdout.Close()
			if err := p.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Wait = %v; want the context's error", err)
			}
			// What was on its way: one chunk, or one splice and the
			// destination pipe's 64 KiB.
			if late, most := sw.late.Load(), int64(256<<10); late > most {
				t.Errorf("%d bytes reached the writer after the context ended; want at most %d", late, most)
			}
			closeDest()
			check()
		})
	}
}
