//go:build linux

package netrunner

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spliceData is random data of n bytes and its sha256.
func spliceData(t *testing.T, n int) ([]byte, [32]byte) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, sha256.Sum256(b)
}

// spliceCat starts cat fed with data and returns it.
func spliceCat(t *testing.T, ctx context.Context, data []byte) *Process {
	t.Helper()
	c := Command("cat")
	c.Stdin = bytes.NewReader(data)
	return start(t, ctx, c)
}

// spliceFinish waits for p and checks that WriteTo's count, the data's size
// and Stats().BytesOut agree.
func spliceFinish(t *testing.T, ctx context.Context, p *Process, n int64, werr error, want int) {
	t.Helper()
	if werr != nil {
		t.Fatalf("WriteTo: %v after %d bytes", werr, n)
	}
	var err error
	within(t, 30*time.Second, "Wait", func() { err = p.Wait(ctx) })
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n != int64(want) {
		t.Errorf("WriteTo copied %d bytes, want %d", n, want)
	}
	if st := p.Stats(); st.BytesOut != int64(want) {
		t.Errorf("Stats().BytesOut = %d, want %d", st.BytesOut, want)
	}
	p.Stdout.Close()
}

// spliceWriteTo runs WriteTo under a time bound.
func spliceWriteTo(t *testing.T, p *Process, w io.Writer) (n int64, err error) {
	t.Helper()
	within(t, 60*time.Second, "WriteTo", func() { n, err = p.Stdout.WriteTo(w) })
	return n, err
}

// hashReader hashes what r delivers up to EOF, in a goroutine.
func hashReader(r io.Reader) <-chan [32]byte {
	ch := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.Copy(h, r)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		ch <- sum
	}()
	return ch
}

func waitHash(t *testing.T, ch <-chan [32]byte) [32]byte {
	t.Helper()
	select {
	case sum := <-ch:
		return sum
	case <-time.After(30 * time.Second):
		t.Fatal("the reader of the destination did not reach EOF")
		return [32]byte{}
	}
}

// Into a pipe (an *os.File the runtime poller owns), drained by another
// goroutine.
func TestSpliceToPipe(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run("blocking="+strconv.FormatBool(blocking), func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			data, sum := spliceData(t, 16<<20+12345)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			if blocking {
				pw.Fd() // puts the descriptor in blocking mode
			}
			got := hashReader(pr)
			p := spliceCat(t, ctx, data)
			n, werr := spliceWriteTo(t, p, pw)
			pw.Close()
			if waitHash(t, got) != sum {
				t.Errorf("the data came out of the pipe changed")
			}
			spliceFinish(t, ctx, p, n, werr, len(data))
			pr.Close()
			check()
		})
	}
}

func TestSpliceToDevNull(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 64 << 20
	p := start(t, ctx, Command("head", "-c", strconv.Itoa(size), "/dev/zero"))
	n, werr := spliceWriteTo(t, p, f)
	spliceFinish(t, ctx, p, n, werr, size)
	f.Close()
	check()
}

// The data moves inside the kernel: the test process's own read and write
// counters (rchar and wchar of /proc/self/io) hardly move while 64 MiB pass.
// The counters are read while the child is alive: reaping a child adds its
// counters, and its children's, to the parent's.
func TestSpliceBypassesUserSpace(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 64 << 20
	p := start(t, ctx, sh(`head -c `+strconv.Itoa(size)+` /dev/zero; exec sleep 1000`))
	r0, w0 := selfIO(t)
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := p.Stdout.WriteTo(f)
		res <- result{n, err}
	}()
	waitFor(t, 30*time.Second, "64 MiB to pass", func() bool { return p.Stats().BytesOut >= size })
	r1, w1 := selfIO(t)
	p.Kill()
	var r result
	within(t, 20*time.Second, "WriteTo after Kill", func() { r = <-res })
	if r.err != nil || r.n != size {
		t.Errorf("WriteTo: %d, %v; want %d bytes", r.n, r.err, size)
	}
	if r1-r0 > size/8 || w1-w0 > size/8 {
		t.Errorf("WriteTo to /dev/null of %d bytes read %d and wrote %d bytes through user space", size, r1-r0, w1-w0)
	}
	t.Logf("rchar +%d, wchar +%d while %d bytes passed", r1-r0, w1-w0, size)
	within(t, 20*time.Second, "Wait", func() { p.Wait(ctx) })
	p.Stdout.Close()
	f.Close()
	check()
}

// selfIO returns the test process's rchar and wchar.
func selfIO(t *testing.T) (rchar, wchar int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "rchar":
			rchar = n
		case "wchar":
			wchar = n
		}
	}
	return rchar, wchar
}

// Into a regular file, at its current offset; and into one opened with
// O_APPEND, which splice refuses, so the copying loop takes over.
func TestSpliceToFile(t *testing.T) {
	for _, flag := range []int{os.O_TRUNC, os.O_APPEND} {
		name := map[int]string{os.O_TRUNC: "plain", os.O_APPEND: "append"}[flag]
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			data, _ := spliceData(t, 8<<20+7)
			path := filepath.Join(t.TempDir(), "out")
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("header\n"); err != nil {
				t.Fatal(err)
			}
			p := spliceCat(t, ctx, data)
			n, werr := spliceWriteTo(t, p, f)
			spliceFinish(t, ctx, p, n, werr, len(data))
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte("header\n"), data...); !bytes.Equal(got, want) {
				t.Errorf("file holds %d bytes, want %d (first difference at %d)", len(got), len(want), spliceFirstDiff(got, want))
			}
			check()
		})
	}
}

func spliceFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Into a socket: TCP on loopback and a unix socket.
func TestSpliceToConn(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "sock")
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("listen %s: %v", network, err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			conn, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			server, ok := <-accepted
			if !ok {
				t.Fatal("accept failed")
			}
			defer server.Close()
			got := hashReader(server)

			data, sum := spliceData(t, 16<<20+3)
			p := spliceCat(t, ctx, data)
			n, werr := spliceWriteTo(t, p, conn)
			switch c := conn.(type) {
			case *net.TCPConn:
				c.CloseWrite()
			case *net.UnixConn:
				c.CloseWrite()
			}
			if waitHash(t, got) != sum {
				t.Errorf("the data came out of the socket changed")
			}
			spliceFinish(t, ctx, p, n, werr, len(data))
			conn.Close()
			server.Close()
			ln.Close()
			check()
		})
	}
}

// Into writers that are no file: the copying loop (net.Pipe is no
// syscall.Conn).
func TestSpliceCopyPath(t *testing.T) {
	t.Run("bytes.Buffer", func(t *testing.T) {
		ctx := testCtx(t)
		data, _ := spliceData(t, 4<<20+1)
		var buf bytes.Buffer
		p := spliceCat(t, ctx, data)
		n, werr := spliceWriteTo(t, p, &buf)
		spliceFinish(t, ctx, p, n, werr, len(data))
		if !bytes.Equal(buf.Bytes(), data) {
			t.Errorf("buffer holds %d bytes, want %d, first difference at %d", buf.Len(), len(data), spliceFirstDiff(buf.Bytes(), data))
		}
	})
	t.Run("net.Pipe", func(t *testing.T) {
		ctx := testCtx(t)
		data, sum := spliceData(t, 4<<20+1)
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		got := hashReader(b)
		p := spliceCat(t, ctx, data)
		n, werr := spliceWriteTo(t, p, a)
		a.Close()
		if waitHash(t, got) != sum {
			t.Errorf("the data came through net.Pipe changed")
		}
		spliceFinish(t, ctx, p, n, werr, len(data))
	})
}

// When the destination's reader goes away, WriteTo returns EPIPE, and the
// process can still be stopped cleanly.
func TestSpliceReaderClosesEarly(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run("blocking="+strconv.FormatBool(blocking), func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			if blocking {
				pw.Fd()
			}
			readerDone := make(chan struct{})
			go func() {
				defer close(readerDone)
				io.CopyN(io.Discard, pr, 1<<20)
				pr.Close()
			}()
			p := start(t, ctx, Command("cat", "/dev/zero"))
			n, werr := spliceWriteTo(t, p, pw)
			<-readerDone
			if !errors.Is(werr, syscall.EPIPE) {
				t.Errorf("WriteTo after the reader closed: %d bytes, %v; want EPIPE", n, werr)
			}
			if n < 1<<20 {
				t.Errorf("WriteTo copied %d bytes, less than the reader took", n)
			}
			var serr error
			within(t, 20*time.Second, "Stop", func() { serr = p.Stop(context.Background()) })
			if ee := exitErr(t, serr); ee.Signal != syscall.SIGTERM {
				t.Errorf("Stop: %v, want death by SIGTERM", serr)
			}
			p.Stdout.Close()
			pw.Close()
			check()
		})
	}
}

// A WriteTo that splices while the process is killed ends with what the
// pipe held and no error; the count matches Stats.
func TestSpliceProcessKilledDuring(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	counted := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, pr)
		counted <- n
	}()
	p := start(t, ctx, Command("cat", "/dev/zero"))
	res := make(chan struct {
		n   int64
		err error
	}, 1)
	go func() {
		n, err := p.Stdout.WriteTo(pw)
		res <- struct {
			n   int64
			err error
		}{n, err}
	}()
	waitFor(t, 20*time.Second, "data to flow", func() bool { return p.Stats().BytesOut > 4<<20 })
	p.Kill()
	var r struct {
		n   int64
		err error
	}
	select {
	case r = <-res:
	case <-time.After(20 * time.Second):
		t.Fatal("WriteTo did not return after the process was killed")
	}
	if r.err != nil {
		t.Errorf("WriteTo after the process was killed: %v", r.err)
	}
	pw.Close()
	var got int64
	select {
	case got = <-counted:
	case <-time.After(20 * time.Second):
		t.Fatal("the reader of the pipe did not see EOF")
	}
	if r.n != got || p.Stats().BytesOut != got {
		t.Errorf("WriteTo says %d bytes, the reader got %d, Stats says %d", r.n, got, p.Stats().BytesOut)
	}
	p.Stdout.Close()
	pr.Close()
	check()
}

// A character device that splice(2) refuses gets the copying loop, so the
// error is the one a write gives: ENOSPC for /dev/full, not splice's EINVAL.
func TestSpliceRefusedDeviceFallsBack(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	p := start(t, ctx, Command("head", "-c", "100000", "/dev/zero"))
	n, werr := spliceWriteTo(t, p, full)
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("WriteTo(/dev/full) = %d, %v; want ENOSPC", n, werr)
	}
	p.Stdout.Close()
	p.Wait(ctx)
	full.Close()
	check()
}

// Into /dev/kmsg, which takes writes but refuses splice: everything
// arrives, by the copying loop.
func TestSpliceRefusedDeviceLosesNothing(t *testing.T) {
	kmsg, err := os.OpenFile("/dev/kmsg", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("cannot use /dev/kmsg: %v", err)
	}
	defer kmsg.Close()
	if _, err := kmsg.Seek(0, io.SeekEnd); err != nil { // read only what follows
		t.Skipf("cannot seek /dev/kmsg: %v", err)
	}
	check := leakCheck(t)
	ctx := testCtx(t)
	marker := "netrunner splice fallback test " + strconv.Itoa(os.Getpid()) + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
	p := start(t, ctx, Command("echo", marker))
	n, werr := spliceWriteTo(t, p, kmsg)
	if werr != nil || n != int64(len(marker)+1) {
		t.Fatalf("WriteTo(/dev/kmsg) = %d, %v; want %d, nil", n, werr, len(marker)+1)
	}
	// Each write is one record: "level,seq,usec,flags;message".
	kmsg.SetReadDeadline(time.Now().Add(20 * time.Second))
	rec := make([]byte, 8192)
	for found := false; !found; {
		m, err := kmsg.Read(rec)
		if errors.Is(err, syscall.EPIPE) {
			continue // records were overwritten meanwhile
		}
		if err != nil {
			t.Fatalf("reading /dev/kmsg back, looking for %q: %v", marker, err)
		}
		found = strings.Contains(string(rec[:m]), marker)
	}
	p.Wait(ctx)
	p.Stdout.Close()
	kmsg.Close()
	check()
}

// Close while WriteTo splices: WriteTo returns Close's error, which wraps
// os.ErrClosed, as the copying loop does.
func TestSpliceCloseDuring(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	p := start(t, ctx, sh("echo ready; exec sleep 1000"))
	res := make(chan error, 1)
	go func() {
		_, err := p.Stdout.WriteTo(pw)
		res <- err
	}()
	// "ready" came through: WriteTo is in the splice loop, waiting for more.
	if line := readLine(t, bufio.NewReader(pr)); line != "ready" {
		t.Fatalf("read %q through WriteTo, want ready", line)
	}
	p.Stdout.Close()
	select {
	case err := <-res:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("WriteTo when the Stream was closed: %v; want an error wrapping os.ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("WriteTo did not return 20s after Close")
	}
	p.Kill()
	p.Wait(ctx)
	pw.Close()
	pr.Close()
	check()
}
