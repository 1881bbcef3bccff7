//go:build linux

package netrunner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

func TestOutput(t *testing.T) {
	ctx := testCtx(t)
	out, err := Command("printf", "hello %s", "world").Output(ctx)
	if err != nil || string(out) != "hello world" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	// Output is stdout only: the default StderrTail keeps stderr apart.
	out, err = sh("echo out; echo err >&2").Output(ctx)
	if err != nil || string(out) != "out\n" {
		t.Fatalf("Output with stderr = %q, %v", out, err)
	}
}

// With Cmd.Stdin nil, Run/Output/Chunks/Lines give the child an immediate EOF.
func TestRunStdinNilIsEOF(t *testing.T) {
	ctx := testCtx(t)
	var out []byte
	var err error
	within(t, 10*time.Second, "Output of cat without stdin", func() {
		out, err = Command("cat").Output(ctx)
	})
	if err != nil || len(out) != 0 {
		t.Errorf("Output(cat) = %q, %v", out, err)
	}
	within(t, 10*time.Second, "Run of cat without stdin", func() {
		_, err = Command("cat").Run(ctx)
	})
	if err != nil {
		t.Errorf("Run(cat) = %v", err)
	}
	within(t, 10*time.Second, "Lines of cat without stdin", func() {
		for line, err := range Command("cat").Lines(ctx) {
			t.Errorf("Lines(cat) yielded %q, %v", line, err)
		}
	})
	within(t, 10*time.Second, "Chunks of cat without stdin", func() {
		for b, err := range Command("cat").Chunks(ctx) {
			t.Errorf("Chunks(cat) yielded %q, %v", b, err)
		}
	})
}

// Exit statuses and signals become ExitError; Run still returns its Result.
func TestRunExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		sig    syscall.Signal
	}{
		{"exit 3", 3, 0},
		{"exit 143", 143, 0},
		{"exit 255", 255, 0},
		{"kill -9 $$", -1, syscall.SIGKILL},
		{"kill -TERM $$", -1, syscall.SIGTERM},
	} {
		t.Run(tc.script, func(t *testing.T) {
			ctx := testCtx(t)
			res, err := sh("echo partial; " + tc.script).Run(ctx)
			ee := exitErr(t, err)
			if ee.Code != tc.code || ee.Signal != tc.sig {
				t.Errorf("ExitError{Code %d, Signal %v}; want {%d, %v}", ee.Code, ee.Signal, tc.code, tc.sig)
			}
			if !strings.Contains(err.Error(), "netrunner: sh -c 'echo partial; "+tc.script+"': ") {
				t.Errorf("error %q does not name the command", err)
			}
			if res == nil {
				t.Fatal("Run returned a nil Result with its ExitError")
			}
			if res.ExitCode != tc.code || res.Stats.ExitCode != tc.code {
				t.Errorf("Result.ExitCode %d, Stats.ExitCode %d; want %d", res.ExitCode, res.Stats.ExitCode, tc.code)
			}
			if string(res.Stdout) != "partial\n" {
				t.Errorf("Result.Stdout = %q", res.Stdout)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v matches a context error though no context ended", err)
			}
		})
	}
}

// An io.Reader as stdin is copied in while stdout is read: 64 MiB through
// cat does not deadlock. Chunks carries the 64 MiB (checked as it streams);
// Run, which must hold all of it, 16 MiB: first-touch page faults make every
// held MiB slow on these VMs, worse under -race, and 16 MiB is already 256
// times what the pipes hold.
func TestRunStdinReaderConcurrent(t *testing.T) {
	t.Run("Chunks-64MiB", func(t *testing.T) {
		const size = 64 << 20
		ctx := testCtx(t)
		c := Command("cat")
		c.Stdin = &patternReader{n: size}
		want := &patternReader{n: size}
		buf := make([]byte, 64<<10)
		n := 0
		within(t, 25*time.Second, "Chunks of cat with 64 MiB in", func() {
			for b, err := range c.Chunks(ctx) {
				if err != nil {
					t.Errorf("Chunks: %v after %d bytes", err, n)
					return
				}
				if _, err := io.ReadFull(want, buf[:min(len(b), len(buf))]); err != nil || len(b) > len(buf) || !bytes.Equal(b, buf[:len(b)]) {
					t.Errorf("chunk at %d (%d bytes) differs from what was sent", n, len(b))
					return
				}
				n += len(b)
			}
		})
		if n != size {
			t.Errorf("got %d bytes back; want %d", n, size)
		}
	})
	t.Run("Run-16MiB", func(t *testing.T) {
		const size = 16 << 20
		ctx := testCtx(t)
		c := Command("cat")
		c.Stdin = &patternReader{n: size}
		var res *Result
		var err error
		within(t, 25*time.Second, "Run of cat with 16 MiB in", func() { res, err = c.Run(ctx) })
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if at := samePattern(res.Stdout, size); at >= 0 {
			t.Fatalf("got %d bytes back, differing from the %d sent at %d", len(res.Stdout), size, at)
		}
		if res.Stats.BytesIn != size || res.Stats.BytesOut != size {
			t.Errorf("Stats: BytesIn %d, BytesOut %d; want %d each", res.Stats.BytesIn, res.Stats.BytesOut, size)
		}
	})
}

// A child that stops reading early is not an error of the run, even with an
// endless stdin reader.
func TestRunStdinChildStopsReading(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   io.Reader
	}{
		{"endless", zeroReader{}},
		{"64MiB", io.LimitReader(zeroReader{}, 64<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			c := Command("head", "-c", "10")
			c.Stdin = tc.in
			var out []byte
			var err error
			within(t, 20*time.Second, "Output of head -c 10", func() { out, err = c.Output(ctx) })
			if err != nil {
				t.Fatalf("Output: %v (EPIPE on stdin must not fail the run)", err)
			}
			if len(out) != 10 {
				t.Fatalf("got %d bytes; want 10", len(out))
			}
			check()
		})
	}
}

// MaxOutput keeps exactly MaxOutput bytes, stops the process, wraps
// ErrMaxOutput; output exactly at the limit is a success.
func TestMaxOutput(t *testing.T) {
	ctx := testCtx(t)

	t.Run("yes", func(t *testing.T) {
		check := leakCheck(t)
		c := Command("yes")
		c.MaxOutput = 1001
		var out []byte
		var err error
		within(t, 20*time.Second, "Output of yes with MaxOutput", func() { out, err = c.Output(ctx) })
		if !errors.Is(err, ErrMaxOutput) {
			t.Fatalf("err = %v; want ErrMaxOutput", err)
		}
		if !strings.Contains(err.Error(), "yes") {
			t.Errorf("error %q does not name the command", err)
		}
		want := strings.Repeat("y\n", 501)[:1001]
		if string(out) != want {
			t.Fatalf("kept %d bytes %.20q...; want the first 1001 bytes of yes", len(out), out)
		}
		check()
	})

	t.Run("Run", func(t *testing.T) {
		c := Command("yes")
		c.MaxOutput = 5000
		res, err := c.Run(ctx)
		if !errors.Is(err, ErrMaxOutput) {
			t.Fatalf("err = %v; want ErrMaxOutput", err)
		}
		if res == nil || len(res.Stdout) != 5000 {
			t.Fatalf("Result %v; want 5000 bytes of stdout", res)
		}
	})

	for _, tc := range []struct {
		size int
		ok   bool
	}{{999, true}, {1000, true}, {1001, false}, {100000, false}} {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			c := Command("head", "-c", strconv.Itoa(tc.size), "/dev/zero")
			c.MaxOutput = 1000
			out, err := c.Output(ctx)
			if tc.ok {
				if err != nil || len(out) != tc.size {
					t.Fatalf("%d bytes with MaxOutput 1000: %d bytes, %v; want all, nil", tc.size, len(out), err)
				}
				return
			}
			if !errors.Is(err, ErrMaxOutput) || len(out) != 1000 {
				t.Fatalf("%d bytes with MaxOutput 1000: %d bytes, %v; want 1000, ErrMaxOutput", tc.size, len(out), err)
			}
		})
	}
}

// StderrTail (the default): the child is never blocked by stderr, the last
// 64 KiB are kept, ExitError carries the tail.
func TestStderrTail(t *testing.T) {
	ctx := testCtx(t)
	script := `head -c 1000000 /dev/zero | tr '\0' x >&2; printf END >&2; echo done`
	var res *Result
	var err error
	within(t, 20*time.Second, "Run with 1 MB of stderr", func() { res, err = sh(script).Run(ctx) })
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if string(res.Stdout) != "done\n" {
		t.Errorf("Stdout = %q", res.Stdout)
	}
	if len(res.Stderr) != 64<<10 {
		t.Errorf("Stderr tail has %d bytes; want %d", len(res.Stderr), 64<<10)
	}
	if !bytes.HasSuffix(res.Stderr, []byte("xxxEND")) || strings.Trim(string(res.Stderr), "xEND") != "" {
		t.Errorf("Stderr tail is not the end of stderr: ...%q", res.Stderr[max(0, len(res.Stderr)-20):])
	}
	if res.Stats.BytesErr != 1000003 {
		t.Errorf("Stats.BytesErr = %d; want 1000003", res.Stats.BytesErr)
	}

	// The tail rides on the ExitError.
	_, err = sh(`head -c 100000 /dev/zero | tr '\0' y >&2; echo "it broke" >&2; exit 2`).Output(ctx)
	ee := exitErr(t, err)
	if ee.Code != 2 {
		t.Errorf("Code = %d; want 2", ee.Code)
	}
	if len(ee.Stderr) != 64<<10 || !bytes.HasSuffix(ee.Stderr, []byte("it broke\n")) {
		t.Errorf("ExitError.Stderr: %d bytes ending %q; want 64 KiB ending \"it broke\\n\"", len(ee.Stderr), ee.Stderr[max(0, len(ee.Stderr)-20):])
	}

	// Short stderr is kept whole.
	res, err = sh("echo oops >&2; exit 1").Run(ctx)
	ee = exitErr(t, err)
	if string(ee.Stderr) != "oops\n" || res == nil || string(res.Stderr) != "oops\n" {
		t.Errorf("ExitError.Stderr %q, Result %v; want \"oops\\n\"", ee.Stderr, res)
	}
}

func TestStderrModes(t *testing.T) {
	ctx := testCtx(t)
	script := `echo out; echo err >&2; echo out2`

	c := sh(script)
	c.Stderr = StderrToStdout
	res, err := c.Run(ctx)
	if err != nil || string(res.Stdout) != "out\nerr\nout2\n" || len(res.Stderr) != 0 {
		t.Errorf("StderrToStdout: Stdout %q, Stderr %q, %v", res.Stdout, res.Stderr, err)
	}

	c = sh(script)
	c.Stderr = StderrDiscard
	res, err = c.Run(ctx)
	if err != nil || string(res.Stdout) != "out\nout2\n" || len(res.Stderr) != 0 {
		t.Errorf("StderrDiscard: Stdout %q, Stderr %q, %v", res.Stdout, res.Stderr, err)
	}
	c = sh(`echo gone >&2; exit 4`)
	c.Stderr = StderrDiscard
	_, err = c.Run(ctx)
	if ee := exitErr(t, err); len(ee.Stderr) != 0 {
		t.Errorf("StderrDiscard: ExitError.Stderr = %q", ee.Stderr)
	}

	// StderrStream with Run: all of stderr, past the 64 KiB a tail keeps.
	c = sh(`head -c 300000 /dev/zero | tr '\0' e >&2; echo out`)
	c.Stderr = StderrStream
	res, err = c.Run(ctx)
	if err != nil || string(res.Stdout) != "out\n" {
		t.Fatalf("StderrStream: Stdout %q, %v", res.Stdout, err)
	}
	if len(res.Stderr) != 300000 || strings.Trim(string(res.Stderr), "e") != "" {
		t.Errorf("StderrStream: Result.Stderr has %d bytes; want all 300000", len(res.Stderr))
	}
	if res.Stats.BytesErr != 300000 {
		t.Errorf("StderrStream: Stats.BytesErr %d", res.Stats.BytesErr)
	}

	// StderrStream with MaxOutput: Result.Stderr is bounded by it too.
	c = sh(`head -c 300000 /dev/zero | tr '\0' e >&2; echo out`)
	c.Stderr = StderrStream
	c.MaxOutput = 1000
	res, _ = c.Run(ctx)
	if res == nil || string(res.Stdout) != "out\n" || len(res.Stderr) != 1000 {
		t.Errorf("StderrStream with MaxOutput 1000: Result %+v", res)
	}
}

// A context that ends stops the run; the error is an ExitError that also
// matches the context's error, and Run returns what it had.
func TestRunContext(t *testing.T) {
	t.Run("deadline-Run", func(t *testing.T) {
		check := leakCheck(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var res *Result
		var err error
		within(t, 15*time.Second, "Run past its deadline", func() {
			res, err = sh("echo started; exec sleep 1000").Run(ctx)
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v; want context.DeadlineExceeded", err)
		}
		ee := exitErr(t, err)
		if ee.Signal != syscall.SIGTERM || ee.Code != -1 {
			t.Errorf("ExitError{Code %d, Signal %v}; want SIGTERM", ee.Code, ee.Signal)
		}
		if res == nil || string(res.Stdout) != "started\n" {
			t.Errorf("Result = %+v; want the output up to the stop", res)
		}
		check()
	})
	t.Run("cancel-Output", func(t *testing.T) {
		check := leakCheck(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		var err error
		within(t, 15*time.Second, "Output after cancel", func() {
			_, err = Command("sleep", "1000").Output(ctx)
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v; want context.Canceled", err)
		}
		exitErr(t, err)
		check()
	})
	t.Run("cancelled-before", func(t *testing.T) {
		check := leakCheck(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Command("sleep", "1000").Output(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v; want context.Canceled", err)
		}
		check()
	})
	t.Run("deadline-Chunks", func(t *testing.T) {
		check := leakCheck(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var last error
		n := 0
		within(t, 15*time.Second, "Chunks past its deadline", func() {
			for b, err := range Command("yes").Chunks(ctx) {
				if last != nil {
					t.Errorf("Chunks yielded after its error %v", last)
				}
				if err != nil {
					last = err
					continue
				}
				n += len(b)
			}
		})
		if !errors.Is(last, context.DeadlineExceeded) {
			t.Fatalf("last error %v; want context.DeadlineExceeded", last)
		}
		if n == 0 {
			t.Errorf("no data before the deadline")
		}
		check()
	})
	t.Run("deadline-Lines", func(t *testing.T) {
		check := leakCheck(t)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		var last error
		within(t, 15*time.Second, "Lines past its deadline", func() {
			for _, err := range sh("echo a; exec sleep 1000").Lines(ctx) {
				if err != nil {
					last = err
				}
			}
		})
		if !errors.Is(last, context.DeadlineExceeded) {
			t.Fatalf("last error %v; want context.DeadlineExceeded", last)
		}
		check()
	})
	// errgroup and WithCancelCause say why they cancelled: every error
	// the run gives keeps that cause and still matches context.Canceled.
	t.Run("cause", func(t *testing.T) {
		check := leakCheck(t)
		boom := errors.New("a sibling failed")
		matches := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, context.Canceled) || !errors.Is(err, boom) || !strings.Contains(errString(err), boom.Error()) {
				t.Errorf("%s: %v; want an error matching context.Canceled and the cause, and saying it", what, err)
			}
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(200*time.Millisecond, func() { cancel(boom) })
		var err error
		within(t, 15*time.Second, "Run after cancel", func() { _, err = sh("echo a; exec sleep 1000").Run(ctx) })
		matches("Run", err)
		exitErr(t, err)

		ctx, cancel = context.WithCancelCause(context.Background())
		time.AfterFunc(200*time.Millisecond, func() { cancel(boom) })
		var last error
		within(t, 15*time.Second, "Lines after cancel", func() {
			for _, err := range sh("echo a; exec sleep 1000").Lines(ctx) {
				if err != nil {
					last = err
				}
			}
		})
		matches("Lines", last)

		// Next and Write return the context's error itself, as the
		// Stream's contract says; Wait's error names the command and the
		// cause.
		p := start(t, testCtx(t), Command("sleep", "1000"))
		ctx, cancel = context.WithCancelCause(context.Background())
		cancel(boom)
		if _, err := p.Stdout.Next(ctx); err != context.Canceled {
			t.Errorf("Next: %v; want context.Canceled", err)
		}
		if _, err := p.Write(ctx, []byte("x")); err != context.Canceled {
			t.Errorf("Write: %v; want context.Canceled", err)
		}
		matches("Wait", p.Wait(ctx))
		reap(t, p)
		check()
	})
	// With errgroup the cause is another task's error: a run cancelled by
	// it must not pass for that error (an ExitError, ErrNotFound, or one
	// wrapping io.EOF that a reader takes for a clean end).
	t.Run("cause-not-borrowed", func(t *testing.T) {
		check := leakCheck(t)
		others := []error{
			&ExitError{Code: 3, name: "other"},
			fmt.Errorf("peer hung up: %w", io.EOF),
			fmt.Errorf("lookup: %w", exec.ErrNotFound),
		}
		for _, other := range others {
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(100*time.Millisecond, func() { cancel(other) })
			var err error
			within(t, 15*time.Second, "Run after cancel", func() { _, err = Command("sleep", "1000").Run(ctx) })
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != -1 || ee.Signal != syscall.SIGTERM {
				t.Errorf("cause %v: Run: %v; want this run's own ExitError (SIGTERM)", other, err)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, exec.ErrNotFound) || !errors.Is(err, other) || !errors.Is(err, context.Canceled) {
				t.Errorf("cause %v: Run: %v; want it to match the cause and context.Canceled, and nothing inside the cause", other, err)
			}
		}
		check()
	})
}

func collectLines(t *testing.T, c *Cmd) ([]string, error) {
	t.Helper()
	var lines []string
	var last error
	for line, err := range c.Lines(testCtx(t)) {
		if last != nil {
			t.Fatalf("Lines yielded after its error %v", last)
		}
		if err != nil {
			if line != nil {
				t.Errorf("Lines yielded a line with its error")
			}
			last = err
			continue
		}
		lines = append(lines, string(line))
	}
	return lines, last
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name, printf string
		want         []string
	}{
		{"plain", `a\nb\nc\n`, []string{"a", "b", "c"}},
		{"crlf", `a\r\nb\r\n`, []string{"a", "b"}},
		{"mixed", `a\nb\r\nc\n\nlast`, []string{"a", "b", "c", "", "last"}},
		{"lone-cr-kept", `a\rb\n`, []string{"a\rb"}},
		{"unterminated", `only`, []string{"only"}},
		{"empty", ``, nil},
		{"empty-lines", `\n\n`, []string{"", ""}},
	} {
		for _, chunk := range []int{0, 1} { // 1: every byte a chunk of its own
			t.Run(tc.name+"/chunk-"+strconv.Itoa(chunk), func(t *testing.T) {
				c := Command("printf", tc.printf)
				c.ChunkSize = chunk
				lines, err := collectLines(t, c)
				if err != nil {
					t.Fatalf("Lines error: %v", err)
				}
				if strings.Join(lines, "|") != strings.Join(tc.want, "|") || len(lines) != len(tc.want) {
					t.Fatalf("lines %q; want %q", lines, tc.want)
				}
			})
		}
	}
}

// Lines across chunk boundaries: small ChunkSize, many lines.
func TestLinesAcrossChunks(t *testing.T) {
	c := sh(`i=0; while [ $i -lt 2000 ]; do echo "line-$i"; i=$((i+1)); done`)
	c.ChunkSize = 5
	lines, err := collectLines(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2000 {
		t.Fatalf("%d lines; want 2000", len(lines))
	}
	for i, l := range lines {
		if l != "line-"+strconv.Itoa(i) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
}

func TestLinesTooLong(t *testing.T) {
	// 200000 bytes without a newline: past max(ChunkSize, 64 KiB).
	lines, err := collectLines(t, sh(`echo short; head -c 200000 /dev/zero | tr '\0' a`))
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v; want ErrLineTooLong", err)
	}
	if len(lines) > 1 || (len(lines) == 1 && lines[0] != "short") {
		t.Errorf("lines before the error: %d (%.20q)", len(lines), lines)
	}

	// A line just under 64 KiB is fine.
	lines, err = collectLines(t, sh(`head -c 60000 /dev/zero | tr '\0' a; echo; echo next`))
	if err != nil || len(lines) != 2 || len(lines[0]) != 60000 || lines[1] != "next" {
		t.Fatalf("60000-byte line: %d lines, %v", len(lines), err)
	}

	// With a larger ChunkSize the limit is ChunkSize.
	c := sh(`head -c 200000 /dev/zero | tr '\0' a`)
	c.ChunkSize = 256 << 10
	lines, err = collectLines(t, c)
	if err != nil || len(lines) != 1 || len(lines[0]) != 200000 {
		t.Fatalf("200000-byte line with ChunkSize 256 KiB: %d lines, %v", len(lines), err)
	}
}

func TestChunks(t *testing.T) {
	ctx := testCtx(t)
	c := Command("head", "-c", "1000000", "/dev/urandom")
	c.ChunkSize = 4096
	n, chunks := 0, 0
	for b, err := range c.Chunks(ctx) {
		if err != nil {
			t.Fatalf("Chunks error: %v", err)
		}
		if len(b) == 0 || len(b) > 4096 {
			t.Fatalf("chunk of %d bytes with ChunkSize 4096", len(b))
		}
		n += len(b)
		chunks++
	}
	if n != 1000000 {
		t.Fatalf("%d bytes; want 1000000", n)
	}

	// A failed run: the data, then the ExitError as the last yield.
	var got []byte
	var last error
	for b, err := range sh("echo hi; exit 4").Chunks(ctx) {
		if last != nil {
			t.Fatalf("yield after the error %v", last)
		}
		if err != nil {
			last = err
			continue
		}
		got = append(got, b...)
	}
	if string(got) != "hi\n" {
		t.Errorf("data %q", got)
	}
	if ee := exitErr(t, last); ee.Code != 4 {
		t.Errorf("Code %d; want 4", ee.Code)
	}

	// A start failure: one error, no data.
	yields := 0
	for b, err := range Command("netrunner-no-such-program").Chunks(ctx) {
		yields++
		if b != nil || !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("Chunks of a missing program yielded %q, %v", b, err)
		}
	}
	if yields != 1 {
		t.Errorf("Chunks of a missing program yielded %d times; want 1", yields)
	}
}

// Breaking out of Chunks or Lines stops and reaps the process before the
// loop statement returns.
func TestIterBreakReaps(t *testing.T) {
	for _, kind := range []string{"Chunks", "Lines"} {
		t.Run(kind, func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			c := sh("echo $$; exec yes")
			c.KillTimeout = 5 * time.Second // yes dies of TERM: no need to wait for KILL
			var seq func(func([]byte, error) bool)
			if kind == "Chunks" {
				seq = c.Chunks(ctx)
			} else {
				seq = c.Lines(ctx)
			}
			pid, n := 0, 0
			t0 := time.Now()
			for b, err := range seq {
				if err != nil {
					t.Fatalf("error before the break: %v", err)
				}
				if pid == 0 {
					first, _, _ := bytes.Cut(b, []byte("\n"))
					pid, err = strconv.Atoi(string(first))
					if err != nil {
						t.Fatalf("first output %q is not the pid", b)
					}
				}
				if n++; n == 100 {
					break
				}
			}
			if ok, what := notOurUnreapedChild(pid); !ok {
				t.Fatalf("after the loop returned, pid %d is still there: %s", pid, what)
			}
			if d := time.Since(t0); d > 4*time.Second {
				t.Errorf("the loop took %v: the break waited for KILL instead of stopping with TERM", d)
			}
			check()
		})
	}
}

// Stats from a Run.
func TestRunStats(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Now()
	c := sh(`cat; printf abc >&2`)
	c.Stdin = bytes.NewReader(pattern(100000))
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := res.Stats
	if st.BytesIn != 100000 || st.BytesOut != 100000 || st.BytesErr != 3 {
		t.Errorf("BytesIn %d, BytesOut %d, BytesErr %d; want 100000, 100000, 3", st.BytesIn, st.BytesOut, st.BytesErr)
	}
	if st.Reads <= 0 || st.Writes <= 0 {
		t.Errorf("Reads %d, Writes %d; want > 0", st.Reads, st.Writes)
	}
	if st.StartedAt.Before(t0.Add(-time.Second)) || st.StartedAt.After(time.Now()) {
		t.Errorf("StartedAt %v; the run started at about %v", st.StartedAt, t0)
	}
	if st.Duration <= 0 || st.Duration > time.Since(t0)+time.Second {
		t.Errorf("Duration %v", st.Duration)
	}
	if st.ExitCode != 0 {
		t.Errorf("ExitCode %d", st.ExitCode)
	}
	if st.MaxRSS <= 0 {
		t.Errorf("MaxRSS %d; want > 0", st.MaxRSS)
	}
	if st.MaxRSS < 100<<10 {
		t.Errorf("MaxRSS %d: want bytes, not KiB", st.MaxRSS)
	}

	// Duration covers the run.
	res, err = Command("sleep", "0.2").Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Duration < 190*time.Millisecond {
		t.Errorf("Duration of sleep 0.2 = %v", res.Stats.Duration)
	}

	// CPU time of a busy child.
	res, err = sh(`i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cpu := res.Stats.UserTime + res.Stats.SystemTime; cpu <= 0 {
		t.Errorf("UserTime %v + SystemTime %v of a busy child; want > 0", res.Stats.UserTime, res.Stats.SystemTime)
	}
}

// Errors name the command.
func TestErrorsNameCommand(t *testing.T) {
	ctx := testCtx(t)
	_, err := Command("false").Output(ctx)
	if err == nil || !strings.Contains(err.Error(), "false") {
		t.Errorf("error %v does not name false", err)
	}
	_, err = Command("netrunner-missing-xyz").Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "netrunner-missing-xyz") || !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("error %v", err)
	}
	// Not executable: the spawn fails, naming the program; nothing leaks.
	check := leakCheck(t)
	dir := t.TempDir()
	script := dir + "/not-executable"
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Command(script).Output(ctx)
	if err == nil || !strings.Contains(err.Error(), "not-executable") {
		t.Errorf("running a non-executable file: %v", err)
	}
	// Dir that is a file.
	c := Command("true")
	c.Dir = script
	if _, err := c.Output(ctx); err == nil || !strings.Contains(err.Error(), script) {
		t.Errorf("Dir naming a file: %v", err)
	}
	check()
}

// A Stdin reader that fails: the output so far, and an error wrapping the
// reader's.
func TestRunStdinReaderError(t *testing.T) {
	ctx := testCtx(t)
	boom := errors.New("boom from the reader")
	c := Command("cat")
	c.Stdin = io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))
	var out []byte
	var err error
	within(t, 10*time.Second, "Output with a failing Stdin reader", func() { out, err = c.Output(ctx) })
	if !errors.Is(err, boom) {
		t.Errorf("err = %v; want the reader's error", err)
	}
	if string(out) != "abc" {
		t.Errorf("out = %q; want abc", out)
	}
}

// A child that ignores its stdin and exits, with a big Stdin reader and
// plenty of output: no deadlock, no error.
func TestRunStdinIgnored(t *testing.T) {
	ctx := testCtx(t)
	c := Command("head", "-c", "3000000", "/dev/zero")
	c.Stdin = io.LimitReader(zeroReader{}, 16<<20)
	var out []byte
	var err error
	within(t, 20*time.Second, "Output of a child ignoring stdin", func() { out, err = c.Output(ctx) })
	if err != nil || len(out) != 3000000 {
		t.Fatalf("Output = %d bytes, %v", len(out), err)
	}
}

// A line too long for Lines ends it with an error that names the command
// and the stream, each followed by ": ".
func TestLinesTooLongMessage(t *testing.T) {
	check := leakCheck(t)
	var last error
	for _, err := range sh("head -c 100000 /dev/zero").Lines(testCtx(t)) {
		if err != nil {
			last = err
		}
	}
	if !errors.Is(last, ErrLineTooLong) {
		t.Fatalf("Lines ended with %v, want ErrLineTooLong", last)
	}
	if msg := last.Error(); !strings.HasPrefix(msg, `netrunner: sh -c 'head -c 100000 /dev/zero': stdout: line longer than`) {
		t.Errorf("error %q, want it to start with %q", msg, `netrunner: sh -c 'head -c 100000 /dev/zero': stdout: line longer than`)
	}
	check()
}

// The largest MaxOutput means no practical limit: the whole output, no
// overflow in the comparison against it.
func TestMaxOutputLargest(t *testing.T) {
	for _, limit := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt32 + 1} {
		c := Command("echo", "hello")
		c.MaxOutput = limit
		out, err := c.Output(testCtx(t))
		if err != nil || string(out) != "hello\n" {
			t.Errorf("MaxOutput %d: %q, %v; want \"hello\\n\", nil", limit, out, err)
		}
	}
}

// Chunks and Lines give no way to read Process.Stderr, so StderrStream is
// refused before anything runs, instead of a child that fills its stderr
// pipe blocking forever.
func TestChunksLinesRefuseStderrStream(t *testing.T) {
	for _, name := range []string{"Chunks", "Lines"} {
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			marker := filepath.Join(t.TempDir(), "ran")
			c := sh("touch " + marker + "; head -c 2000000 /dev/zero >&2; echo out")
			c.Stderr = StderrStream
			seq := c.Chunks
			if name == "Lines" {
				seq = c.Lines
			}
			var errs []error
			var got int
			within(t, 15*time.Second, name+" with StderrStream and 2 MB of stderr", func() {
				for b, err := range seq(testCtx(t)) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					got += len(b)
				}
			})
			if len(errs) != 1 || !errors.Is(errs[0], ErrInvalidCommand) {
				t.Fatalf("%s with StderrStream yielded %d bytes and errors %v; want one ErrInvalidCommand", name, got, errs)
			}
			for _, want := range []string{"netrunner: sh -c 'touch ", "StderrStream", name} {
				if !strings.Contains(errs[0].Error(), want) && !(want == name && strings.Contains(errs[0].Error(), "Chunks or Lines")) {
					t.Errorf("error %q does not mention %s", errs[0], want)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran although it was refused")
			}
			check()
		})
	}
}

// After the context ends, Chunks and Lines yield nothing more from the
// pipe, even with a full 1 MiB pipe behind a slow consumer: the next yield
// is the final error.
func TestChunksLinesStopAtContext(t *testing.T) {
	for _, name := range []string{"Chunks", "Lines"} {
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Large writes, so that the pipe grows to 1 MiB behind the
			// slow consumer.
			c := sh(`yes "$(head -c 1000 /dev/zero | tr '\0' y)" | dd bs=256k iflag=fullblock status=none`)
			seq, every := c.Chunks, 1
			if name == "Lines" {
				seq, every = c.Lines, 64
			}
			var items, before, after int
			var errs []error
			within(t, 20*time.Second, name+" past its context", func() {
				for b, err := range seq(ctx) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					if ctx.Err() != nil {
						after += len(b)
						continue
					}
					before += len(b)
					if before >= 2<<20 {
						cancel() // the pipe is full by now
					}
					if items++; items%every == 0 {
						time.Sleep(10 * time.Millisecond) // a slow consumer: the pipe fills and grows
					}
				}
			})
			if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
				t.Fatalf("errors %v; want one matching context.Canceled", errs)
			}
			if after > 0 {
				t.Errorf("%d bytes yielded after the context ended; want none", after)
			}
			check()
		})
	}
}
