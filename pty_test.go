//go:build linux

package netrunner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ptyOutput runs c with Output and returns its output with the terminal's
// "\r\n" turned back into "\n".
func ptyOutput(t *testing.T, c *Cmd) string {
	t.Helper()
	var out []byte
	var err error
	within(t, 20*time.Second, "Output under PTY", func() { out, err = c.Output(testCtx(t)) })
	if err != nil {
		t.Fatalf("Output %q under PTY: %v (output %q)", c.Args, err, out)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}

func TestPTYTty(t *testing.T) {
	check := leakCheck(t)
	c := onPTY(Command("tty"))
	out := strings.TrimSpace(ptyOutput(t, c))
	if !strings.HasPrefix(out, "/dev/pts/") {
		t.Fatalf("tty printed %q, want /dev/pts/N", out)
	}
	if _, err := strconv.Atoi(strings.TrimPrefix(out, "/dev/pts/")); err != nil {
		t.Errorf("tty printed %q, want /dev/pts/N", out)
	}
	check()
}

func TestPTYSttySize(t *testing.T) {
	for _, ws := range []Winsize{{24, 80}, {1, 1}, {61, 233}} {
		c := Command("stty", "size")
		c.PTY = &ws
		out := strings.TrimSpace(ptyOutput(t, c))
		if want := strconv.Itoa(int(ws.Rows)) + " " + strconv.Itoa(int(ws.Cols)); out != want {
			t.Errorf("stty size under PTY %v printed %q, want %q", ws, out, want)
		}
	}
}

// A Resize done while the child runs is what the child sees afterwards.
func TestPTYResizeInteractive(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := onPTY(sh("read a; stty size; echo \"got $a\""))
	p := start(t, ctx, c)
	if err := p.Resize(Winsize{Rows: 50, Cols: 132}); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if _, err := p.Write(ctx, []byte("go-on\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	var buf bytes.Buffer
	var rerr error
	within(t, 20*time.Second, "reading the PTY to its end", func() { _, rerr = p.Stdout.WriteTo(&buf) })
	if rerr != nil {
		t.Fatalf("WriteTo: %v (read %q)", rerr, buf.Bytes())
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	out := buf.String()
	if !strings.Contains(out, "50 132\r\n") {
		t.Errorf("stty size after Resize printed %q, want it to contain \"50 132\"", out)
	}
	if !strings.Contains(out, "got go-on") {
		t.Errorf("the child did not read what was written: %q", out)
	}
	if st := p.Stats(); st.BytesOut != int64(buf.Len()) || st.BytesIn != int64(len("go-on\n")) {
		t.Errorf("Stats BytesIn %d BytesOut %d, want %d and %d", st.BytesIn, st.BytesOut, len("go-on\n"), buf.Len())
	}
	p.Stdout.Close()
	check()
}

func TestPTYResizeWithoutPTY(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	if err := p.Resize(Winsize{Rows: 10, Cols: 10}); err == nil {
		t.Errorf("Resize on a process without a PTY returned nil")
	} else if !strings.Contains(err.Error(), "sleep") {
		t.Errorf("Resize error %q does not name the command", err)
	}
}

// CloseStdin on a PTY types VEOF: cat sees the end of its input and exits.
func TestPTYCloseStdinSendsEOF(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := onPTY(Command("cat"))
	p := start(t, ctx, c)
	if _, err := p.Write(ctx, []byte("hello\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	var out []byte
	var rerr error
	within(t, 20*time.Second, "reading cat's terminal to its end after CloseStdin", func() { out, rerr = io.ReadAll(p.Stdout) })
	if rerr != nil {
		t.Fatalf("reading the PTY: %v (read %q)", rerr, out)
	}
	var werr error
	within(t, 20*time.Second, "Wait for cat after CloseStdin", func() { werr = p.Wait(ctx) })
	if werr != nil {
		t.Fatalf("cat after CloseStdin on a PTY: %v, want exit 0", werr)
	}
	if p.ExitCode() != 0 {
		t.Errorf("ExitCode %d, want 0", p.ExitCode())
	}
	// The terminal echoes the line, and cat prints it again.
	if n := strings.Count(string(out), "hello"); n < 1 {
		t.Errorf("output %q does not contain hello", out)
	}
	p.Stdout.Close()
	check()
}

func TestPTYLines(t *testing.T) {
	check := leakCheck(t)
	c := onPTY(Command("printf", `one\ntwo\n\nlast`))
	var got []string
	within(t, 20*time.Second, "Lines under PTY", func() {
		for line, err := range c.Lines(testCtx(t)) {
			if err != nil {
				t.Errorf("Lines under PTY yielded error %v (after %q)", err, got)
				return
			}
			got = append(got, string(line))
		}
	})
	// The terminal makes each "\n" a "\r\n"; Lines strips both.
	want := []string{"one", "two", "", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Lines under PTY: %q, want %q", got, want)
	}
	check()
}

func TestPTYChunks(t *testing.T) {
	check := leakCheck(t)
	// Enough to take several reads of the master.
	c := onPTY(sh(`i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done`))
	var got bytes.Buffer
	within(t, 30*time.Second, "Chunks under PTY", func() {
		for chunk, err := range c.Chunks(testCtx(t)) {
			if err != nil {
				t.Errorf("Chunks under PTY yielded error %v after %d bytes", err, got.Len())
				return
			}
			got.Write(chunk)
		}
	})
	lines := strings.Split(strings.TrimSuffix(got.String(), "\r\n"), "\r\n")
	if len(lines) != 2000 || lines[0] != "line 0" || lines[1999] != "line 1999" {
		t.Errorf("Chunks under PTY: %d lines (first %q), want 2000", len(lines), lines[0])
	}
	check()
}

// Run under PTY also ends cleanly, with the exit code of the child.
func TestPTYRunExitCode(t *testing.T) {
	c := onPTY(sh("echo bye; exit 4"))
	res, err := c.Run(testCtx(t))
	if ee := exitErr(t, err); ee.Code != 4 {
		t.Errorf("exit code %d, want 4", ee.Code)
	}
	if res == nil || string(res.Stdout) != "bye\r\n" {
		t.Errorf("Run under PTY: %+v, want stdout %q", res, "bye\r\n")
	}
}

func TestPTYInvalidCombinations(t *testing.T) {
	c := onPTY(Command("true"))
	c.Stderr = StderrStream
	p, err := c.Start(testCtx(t))
	if p != nil {
		reap(t, p)
	}
	if !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("PTY with StderrStream: %v, want ErrInvalidCommand", err)
	}
	// StderrToStdout is what a terminal does anyway.
	c = onPTY(sh("echo err >&2"))
	c.Stderr = StderrToStdout
	if out := ptyOutput(t, c); out != "err\n" {
		t.Errorf("PTY with StderrToStdout printed %q, want %q", out, "err\n")
	}
}

func TestPTYAllStdioAreTerminal(t *testing.T) {
	c := onPTY(sh(`[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; echo err-too >&2`))
	out := ptyOutput(t, c)
	if out != "all-tty\nerr-too\n" {
		t.Errorf("output %q, want stdin, stdout and stderr all terminals, stderr on the terminal", out)
	}
}

// The child leads a session of its own whose controlling terminal is the pty.
func TestPTYSessionLeader(t *testing.T) {
	c := onPTY(sh(`echo $$; cat /proc/$$/stat; tty`))
	lines := strings.Split(strings.TrimSpace(ptyOutput(t, c)), "\n")
	if len(lines) != 3 {
		t.Fatalf("output %q", lines)
	}
	pid := lines[0]
	stat := lines[1]
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	// state ppid pgrp session tty_nr ...
	if len(f) < 5 {
		t.Fatalf("/proc/PID/stat: %q", stat)
	}
	if f[2] != pid || f[3] != pid {
		t.Errorf("child %s: pgrp %s, session %s; want it to lead both", pid, f[2], f[3])
	}
	ttyNr, _ := strconv.Atoi(f[4])
	// tty_nr encodes major:minor; /dev/pts/N is 136:N.
	major, minor := (ttyNr>>8)&0xfff, (ttyNr&0xff)|((ttyNr>>12)&0xfff00)
	if major != 136 || "/dev/pts/"+strconv.Itoa(minor) != lines[2] {
		t.Errorf("controlling terminal %d:%d (tty_nr %d), but the child's tty is %s", major, minor, ttyNr, lines[2])
	}
}

// Stop and the context reach a PTY child like any other.
func TestPTYStop(t *testing.T) {
	check := leakCheck(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	c := onPTY(Command("sleep", "1000"))
	p := start(t, ctx, c)
	cancel()
	var err error
	within(t, 20*time.Second, "a PTY process stopped by its context", func() { <-p.Done(); err = p.Wait(context.Background()) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Wait: %v, want context.Canceled", err)
	}
	p.Stdout.Close()
	check()
}

// Write after CloseStdin on a PTY fails like the pipe case, and nothing
// written after it reaches the child.
func TestPTYWriteAfterCloseStdin(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := onPTY(Command("cat"))
	p := start(t, ctx, c)
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	n, err := p.Write(ctx, []byte("written-after-close\n"))
	if n != 0 || !errors.Is(err, ErrStdinClosed) {
		t.Errorf("Write after CloseStdin = %d, %v; want 0 and ErrStdinClosed", n, err)
	}
	var out []byte
	within(t, 20*time.Second, "reading cat's terminal after CloseStdin", func() { out, _ = io.ReadAll(p.Stdout) })
	if bytes.Contains(out, []byte("written-after-close")) {
		t.Errorf("the child got bytes written after CloseStdin: %q", out)
	}
	if err := p.Wait(ctx); err != nil {
		t.Errorf("cat after CloseStdin: %v, want exit 0", err)
	}
	p.Stdout.Close()
	check()
}

// readsTerminal reports whether a live process of session sid sleeps in
// read(2) on its fd 0, as cat waiting for the terminal does.
func readsTerminal(sid int) bool {
	for _, pi := range allProcs() {
		if pi.state != 'S' || pi.sid != sid {
			continue
		}
		call, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pi.pid))
		if err == nil && strings.HasPrefix(string(call), "0 0x0 ") {
			return true
		}
	}
	return false
}

// A second CloseStdin on a PTY types nothing: the end-of-file is typed
// once, so a second reader after the first one's end keeps waiting.
func TestPTYCloseStdinIdempotent(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	c := onPTY(sh("cat >/dev/null; echo first-eof; cat >/dev/null; echo second-eof"))
	p := start(t, ctx, c)
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	var out []byte
	for !bytes.Contains(out, []byte("first-eof")) {
		b, err := p.Stdout.Next(ctx)
		out = append(out, b...)
		if err != nil {
			t.Fatalf("the first cat did not end after CloseStdin: %v (output %q)", err, out)
		}
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("second CloseStdin: %v", err)
	}
	// The second cat either reads an end-of-file typed by the second call
	// and the shell says so, or blocks reading the terminal.
	waitFor(t, 20*time.Second, "the second cat to end or to wait for input", func() bool {
		return readsTerminal(p.Pid()) || p.ExitCode() >= 0
	})
	if p.ExitCode() >= 0 || !readsTerminal(p.Pid()) {
		t.Errorf("the second CloseStdin ended the second cat too (exit code %d)", p.ExitCode())
	}
	reap(t, p)
	check()
}

// slowLines is an endless reader of short lines, one per few milliseconds.
type slowLines struct{}

func (slowLines) Read(b []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return copy(b, "line\n"), nil
}

// CloseStdin on a PTY fed from Cmd.Stdin ends the copy and types the
// end-of-file, like the pipe case ends the copy and closes the pipe.
func TestPTYCloseStdinEndsCopy(t *testing.T) {
	for _, pty := range []bool{false, true} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			c := Command("cat")
			c.Stdin = slowLines{}
			if pty {
				onPTY(c)
			}
			p := start(t, ctx, c)
			waitFor(t, 20*time.Second, "the copy to start", func() bool { return p.Stats().BytesIn > 0 })
			if err := p.CloseStdin(); err != nil {
				t.Fatalf("CloseStdin with Cmd.Stdin: %v, want nil", err)
			}
			if _, err := p.Write(ctx, []byte("x\n")); !errors.Is(err, ErrStdinClosed) {
				t.Errorf("Write after CloseStdin: %v, want ErrStdinClosed", err)
			}
			go io.Copy(io.Discard, p.Stdout)
			var err error
			within(t, 20*time.Second, "cat to end after CloseStdin ended its copy", func() { err = p.Wait(ctx) })
			if err != nil {
				t.Errorf("cat after CloseStdin: %v, want exit 0", err)
			}
			in := p.Stats().BytesIn
			time.Sleep(50 * time.Millisecond) // the reader yields a line every 5ms
			if got := p.Stats().BytesIn; got != in {
				t.Errorf("the copy went on after CloseStdin: BytesIn %d, then %d", in, got)
			}
			p.Stdout.Close()
			check()
		})
	}
}

// A child that turns canonical mode off reads no end-of-file and no byte
// it was not sent: a typed VEOF would be a data byte (NUL if it waited in
// the terminal from before). It ends with the context, as documented.
func TestPTYNonCanonicalNoEOF(t *testing.T) {
	for _, mode := range []string{"-icanon", "raw"} {
		for _, stdin := range []string{"", "hello\n"} {
			t.Run(mode+"/"+strconv.Quote(stdin), func(t *testing.T) {
				check := leakCheck(t)
				c := onPTY(sh("stty " + mode + "; cat"))
				c.KillTimeout = 100 * time.Millisecond
				if stdin != "" {
					c.Stdin = strings.NewReader(stdin)
				}
				ctx, cancel := context.WithTimeout(testCtx(t), time.Second)
				defer cancel()
				var out []byte
				var err error
				within(t, 20*time.Second, "Output of a raw-mode child", func() { out, err = c.Output(ctx) })
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Output: %v, want the context's deadline", err)
				}
				if i := bytes.IndexFunc(out, func(r rune) bool { return r < ' ' && r != '\r' && r != '\n' }); i >= 0 {
					t.Errorf("the child got a byte it was not sent: %q at %d of %q", out[i], i, out)
				}
				if stdin != "" && !bytes.Contains(out, []byte("hello")) {
					t.Errorf("output %q lacks the input", out)
				}
				check()
			})
		}
	}
}

// The end-of-file waits for a reader: a child that reads the terminal only
// later still gets it, in canonical mode, and Output ends.
func TestPTYLateReaderGetsEOF(t *testing.T) {
	check := leakCheck(t)
	c := onPTY(sh("sleep 0.3; cat; echo done"))
	c.Stdin = strings.NewReader("partial")
	if got := ptyOutput(t, c); got != "partialpartialdone\n" {
		t.Errorf("output %q, want the echo, cat's copy and done", got)
	}
	check()
}

// A PTY run (Run, Output, Chunks, Lines) ends the child's input as the pipe
// case does: after Stdin, if any, the terminal gets its end-of-file, so cat
// ends instead of waiting for the context.
func TestPTYOneShotEndsInput(t *testing.T) {
	pty := &Winsize{Rows: 24, Cols: 80}
	cat := func(stdin io.Reader) *Cmd {
		c := Command("cat")
		c.PTY, c.Stdin = pty, stdin
		return c
	}
	for _, tc := range []struct {
		name  string
		stdin io.Reader
		want  string // cat's output, after the terminal's echo of the input
	}{
		{"nil", nil, ""},
		{"lines", strings.NewReader("one\ntwo\n"), "one\ntwo\n"},
		{"partial-line", strings.NewReader("one\nlast"), "one\nlast"},
		{"reader", onlyReader{strings.NewReader("from a reader\n")}, "from a reader\n"},
		{"empty", strings.NewReader(""), ""},
	} {
		t.Run("Output-"+tc.name, func(t *testing.T) {
			check := leakCheck(t)
			out := ptyOutput(t, cat(tc.stdin))
			if !strings.HasSuffix(out, tc.want) {
				t.Errorf("cat under PTY wrote %q; want it to end with %q", out, tc.want)
			}
			check()
		})
	}
	t.Run("Run", func(t *testing.T) {
		var res *Result
		var err error
		within(t, 20*time.Second, "Run of cat under PTY", func() { res, err = cat(nil).Run(testCtx(t)) })
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Run = %+v, %v; want exit 0", res, err)
		}
	})
	for _, name := range []string{"Chunks", "Lines"} {
		t.Run(name, func(t *testing.T) {
			check := leakCheck(t)
			c := cat(strings.NewReader("a line\n"))
			seq := c.Chunks
			if name == "Lines" {
				seq = c.Lines
			}
			var out strings.Builder
			var errs []error
			ctx := testCtx(t)
			within(t, 20*time.Second, name+" of cat under PTY", func() {
				for b, err := range seq(ctx) {
					if err != nil {
						errs = append(errs, err)
						continue
					}
					out.Write(b)
					out.WriteByte('|')
				}
			})
			if len(errs) > 0 {
				t.Errorf("%s of cat under PTY: %v", name, errs)
			}
			if !strings.Contains(out.String(), "a line") {
				t.Errorf("%s of cat under PTY: %q", name, out.String())
			}
			check()
		})
	}
	// Start with a Stdin reader ends the input too, as a pipe would.
	t.Run("Start-reader", func(t *testing.T) {
		check := leakCheck(t)
		ctx := testCtx(t)
		p := start(t, ctx, cat(strings.NewReader("x")))
		var out []byte
		within(t, 20*time.Second, "reading cat's terminal", func() { out, _ = io.ReadAll(p.Stdout) })
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("Wait: %v (output %q)", err, out)
		}
		if !strings.Contains(string(out), "xx") { // the echo, then cat
			t.Errorf("output %q; want the echo and cat's copy of x", out)
		}
		check()
	})
}

// A descendant that escaped the group (setsid) and holds the terminal open,
// or keeps writing to it, cannot hang the reader of a PTY: once the process
// and its group are gone, what the terminal holds is delivered and the
// Stream ends.
func TestPTYEscapedDescendantDoesNotHangReader(t *testing.T) {
	for _, escape := range []string{"sleep 1000", "yes"} {
		t.Run(strings.Fields(escape)[0], func(t *testing.T) {
			check := leakCheck(t)
			c, pidfile := escapedScript(t, escape)
			onPTY(c)
			var out []byte
			var err error
			within(t, 20*time.Second, "Output under PTY with an escaped descendant", func() { out, err = c.Output(testCtx(t)) })
			if err != nil || !strings.HasPrefix(string(out), "escaped\r\n") {
				t.Errorf("Output = %.40q (%d bytes), %v; want the shell's output first", out, len(out), err)
			}
			// What the terminal held, and not much more: the drain of a
			// terminal is bounded.
			if len(out) > 2*ptyDrainMost {
				t.Errorf("Output read %d bytes; the escaped writer's output went on being read", len(out))
			}
			// (yes dies of the hangup once the master is closed.)
			b, _ := os.ReadFile(pidfile)
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); escape != "yes" && (pid <= 0 || isDead(pid)) {
				t.Errorf("the escaped descendant (%q) is not alive: the test proves nothing", b)
			}
			check()
		})
	}
}
