//go:build linux

package netrunner

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Start, Write, CloseStdin, read back, Wait: the basic round trip with cat.
func TestStartWriteCloseStdin(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("cat"))
	if p.Pid() <= 0 {
		t.Fatalf("Pid = %d", p.Pid())
	}
	if got := p.ExitCode(); got != -1 {
		t.Errorf("ExitCode while running = %d; want -1", got)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while cat waits for input")
	default:
	}
	r := bufio.NewReader(p.Stdout)
	for _, msg := range []string{"hello", "world", strings.Repeat("x", 100000)} {
		n, err := p.Write(ctx, []byte(msg+"\n"))
		if err != nil || n != len(msg)+1 {
			t.Fatalf("Write(%d bytes) = %d, %v", len(msg)+1, n, err)
		}
		if got := readLine(t, r); got != msg {
			t.Fatalf("read back %d bytes %.20q; want %d bytes %.20q", len(got), got, len(msg), msg)
		}
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	if err := p.CloseStdin(); err != nil {
		t.Errorf("CloseStdin twice: %v; want nil", err)
	}
	if n, err := p.Write(ctx, []byte("late")); !errors.Is(err, ErrStdinClosed) || n != 0 {
		t.Errorf("Write after CloseStdin = %d, %v; want 0, ErrStdinClosed", n, err)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Errorf("rest of stdout = %q, %v; want nothing, EOF", rest, err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Wait returned")
	}
	if got := p.ExitCode(); got != 0 {
		t.Errorf("ExitCode = %d; want 0", got)
	}
	st := p.Stats()
	if want := int64(len("hello\nworld\n") + 100001); st.BytesIn != want || st.BytesOut != want {
		t.Errorf("Stats: BytesIn %d, BytesOut %d; want %d each", st.BytesIn, st.BytesOut, want)
	}
	if st.Writes < 3 || st.Reads < 3 {
		t.Errorf("Stats: Writes %d, Reads %d; want >= 3 each", st.Writes, st.Reads)
	}
}

// Write blocks while the child does not read, returns the context's error
// when its context ends, and stays usable.
func TestWriteBlocksHonoursContext(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000")) // never reads stdin
	big := make([]byte, 16<<20)
	for i := range 2 {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		t0 := time.Now()
		n, err := p.Write(short, big)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write #%d of 16 MiB to a child that does not read = %d, %v; want context.DeadlineExceeded", i, n, err)
		}
		if n < 0 || n >= len(big) {
			t.Fatalf("Write #%d = %d bytes; want a partial count", i, n)
		}
		if i == 1 && n != 0 {
			t.Logf("second Write moved %d bytes into a full pipe", n)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("Write #%d returned %v after a 200ms deadline", i, d)
		}
	}
	if st := p.Stats(); st.BytesIn <= 0 || st.BytesIn > 4<<20 {
		t.Errorf("Stats().BytesIn = %d; want the pipe's worth", st.BytesIn)
	}
	if err := p.Signal(0); err != nil {
		t.Errorf("process not running after the blocked Writes: Signal(0) = %v", err)
	}
}

// Several goroutines writing at once: every Write arrives whole.
func TestWriteConcurrentWhole(t *testing.T) {
	const writers, perWriter, recLen = 8, 40, 10000 // records larger than PIPE_BUF
	ctx := testCtx(t)
	p := start(t, ctx, Command("cat"))
	outc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(p.Stdout)
		outc <- b
	}()
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := bytes.Repeat([]byte{byte('a' + g)}, recLen)
			rec[recLen-1] = '\n'
			for range perWriter {
				if n, err := p.Write(ctx, rec); err != nil || n != recLen {
					t.Errorf("writer %d: Write = %d, %v", g, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := p.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	out := <-outc
	if len(out) != writers*perWriter*recLen {
		t.Fatalf("read %d bytes; want %d", len(out), writers*perWriter*recLen)
	}
	counts := map[byte]int{}
	for i := 0; i < len(out); i += recLen {
		rec := out[i : i+recLen]
		c := rec[0]
		if strings.Trim(string(rec[:recLen-1]), string(c)) != "" || rec[recLen-1] != '\n' {
			t.Fatalf("record %d is mixed: writes interleaved (%q...)", i/recLen, rec[:40])
		}
		counts[c]++
	}
	for g := range writers {
		if counts[byte('a'+g)] != perWriter {
			t.Errorf("writer %d: %d records; want %d", g, counts[byte('a'+g)], perWriter)
		}
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// With Cmd.Stdin set there is no stdin pipe for Write.
func TestWriteWithCmdStdin(t *testing.T) {
	ctx := testCtx(t)
	c := Command("cat")
	c.Stdin = strings.NewReader("from the reader")
	p := start(t, ctx, c)
	if n, err := p.Write(ctx, []byte("x")); !errors.Is(err, ErrStdinClosed) || n != 0 {
		t.Errorf("Write with Cmd.Stdin set = %d, %v; want 0, ErrStdinClosed", n, err)
	}
	out, err := io.ReadAll(p.Stdout)
	if err != nil || string(out) != "from the reader" {
		t.Errorf("stdout = %q, %v", out, err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.BytesIn != int64(len("from the reader")) {
		t.Errorf("Stats().BytesIn = %d; want %d", st.BytesIn, len("from the reader"))
	}
}

// An *os.File as Stdin is handed to the child as is.
func TestStdinFile(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "in")
	data := pattern(300000)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := Command("cat")
	c.Stdin = f
	out, err := c.Output(ctx)
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("got %d bytes, differing from the %d in the file", len(out), len(data))
	}
}

// Env and Dir reach the child; nil Env inherits.
func TestEnvAndDir(t *testing.T) {
	ctx := testCtx(t)

	c := Command("env")
	c.Env = []string{"A=1", "B=two words", "C="}
	out, err := c.Output(ctx)
	if err != nil || string(out) != "A=1\nB=two words\nC=\n" {
		t.Errorf("env with Env set: %q, %v", out, err)
	}

	t.Setenv("NETRUNNER_INHERITED", "yes-it-is")
	out, err = Command("sh", "-c", `printf %s "$NETRUNNER_INHERITED"`).Output(ctx)
	if err != nil || string(out) != "yes-it-is" {
		t.Errorf("inherited environment: %q, %v", out, err)
	}

	dir := t.TempDir()
	c = Command("pwd")
	c.Dir = dir
	out, err = c.Output(ctx)
	want, _ := filepath.EvalSymlinks(dir)
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("pwd with Dir %s: %q, %v", dir, out, err)
	}
}

// Path is resolved like exec.LookPath; an absolute Path works as is.
func TestPathResolution(t *testing.T) {
	ctx := testCtx(t)
	abs, err := exec.LookPath("printf")
	if err != nil {
		t.Skip(err)
	}
	out, err := Command(abs, "abs").Output(ctx)
	if err != nil || string(out) != "abs" {
		t.Errorf("absolute path: %q, %v", out, err)
	}
	out, err = (&Cmd{Path: "true"}).Output(ctx)
	if err != nil || len(out) != 0 {
		t.Errorf("Cmd literal with Path only: %q, %v", out, err)
	}
	c := &Cmd{Path: "printf", Args: []string{"printf", "%s", "struct"}}
	out, err = c.Output(ctx)
	if err != nil || string(out) != "struct" {
		t.Errorf("Cmd literal: %q, %v", out, err)
	}
}

// A missing executable: exec.ErrNotFound, naming it, nothing leaked.
func TestStartMissingExecutable(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	const name = "netrunner-no-such-program"
	p, err := Command(name, "arg").Start(ctx)
	if err == nil {
		reap(t, p)
		t.Fatal("Start of a missing program succeeded")
	}
	if p != nil {
		t.Errorf("Start returned a Process with its error")
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("err = %v; want exec.ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Errorf("err %q does not name %s", err, name)
	}
	check()
}

// A missing Dir fails at Start, naming it.
func TestStartMissingDir(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	dir := filepath.Join(t.TempDir(), "no-such-dir")
	c := Command("true")
	c.Dir = dir
	p, err := c.Start(ctx)
	if err == nil {
		reap(t, p)
		t.Fatal("Start with a missing Dir succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("err %q does not name the directory %s", err, dir)
	}
	if !strings.Contains(err.Error(), "true") {
		t.Errorf("err %q does not name the command", err)
	}
	check()
}

// A Cmd starts once.
func TestStartTwice(t *testing.T) {
	ctx := testCtx(t)
	c := Command("true")
	p := start(t, ctx, c)
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	check := leakCheck(t)
	if p2, err := c.Start(ctx); err == nil {
		reap(t, p2)
		t.Error("second Start of the same Cmd succeeded")
	}
	if _, err := c.Run(ctx); err == nil {
		t.Error("Run of a started Cmd succeeded")
	}
	if _, err := c.Output(ctx); err == nil {
		t.Error("Output of a started Cmd succeeded")
	}
	n := 0
	for _, err := range c.Lines(ctx) {
		n++
		if err == nil {
			t.Error("Lines of a started Cmd yielded a line")
		}
	}
	if n != 1 {
		t.Errorf("Lines of a started Cmd yielded %d times; want one error", n)
	}
	check()
}

// A Cmd that ran once does not run again.
func TestRunTwice(t *testing.T) {
	ctx := testCtx(t)
	c := Command("true")
	if _, err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx); err == nil {
		t.Error("second Run of the same Cmd succeeded")
	}
}

// Exit codes through Start/Wait; Done closes without anyone calling Wait.
func TestWaitExitCode(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, sh("exit 3"))
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10s after the child exited")
	}
	if got := p.ExitCode(); got != 3 {
		t.Errorf("ExitCode = %d; want 3", got)
	}
	err := p.Wait(ctx)
	ee := exitErr(t, err)
	if ee.Code != 3 || ee.Signal != 0 {
		t.Errorf("ExitError{Code %d, Signal %d}; want Code 3", ee.Code, ee.Signal)
	}
	if !strings.Contains(err.Error(), "sh") {
		t.Errorf("error %q does not name the command", err)
	}
	if st := p.Stats(); st.ExitCode != 3 {
		t.Errorf("Stats().ExitCode = %d; want 3", st.ExitCode)
	}
	// Wait again: the same answer.
	if err2 := p.Wait(ctx); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Wait = %v; want %v", err2, err)
	}
}

// Signal reaches the whole group: a shell and its background children.
func TestSignalGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(p *Process) error
		want syscall.Signal
	}{
		{"Signal-TERM", func(p *Process) error { return p.Signal(syscall.SIGTERM) }, syscall.SIGTERM},
		{"Signal-HUP", func(p *Process) error { return p.Signal(syscall.SIGHUP) }, syscall.SIGHUP},
		{"Kill", func(p *Process) error { return p.Kill() }, syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			ctx := testCtx(t)
			p := start(t, ctx, sh("sleep 1000 & echo $!; sleep 1000 & echo $!; wait"))
			pids := readPids(t, bufio.NewReader(p.Stdout), 2)
			killPids(t, pids...)
			if err := tc.send(p); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			ee := exitErr(t, p.Wait(ctx))
			if ee.Code != -1 || ee.Signal != tc.want {
				t.Errorf("ExitError{Code %d, Signal %v}; want Code -1, Signal %v", ee.Code, ee.Signal, tc.want)
			}
			if got := p.ExitCode(); got != -1 {
				t.Errorf("ExitCode = %d after a signal; want -1", got)
			}
			for _, pid := range pids {
				waitFor(t, 5*time.Second, "background sleep to die", func() bool { return isDead(pid) })
			}
			reap(t, p)
			check()
		})
	}
}

// Signal: out-of-range numbers are errors; 0 probes; after the reap it is
// os.ErrProcessDone. Kill after exit is nil.
func TestSignalRangeAndAfterExit(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	for _, sig := range []syscall.Signal{-1, 65, 1000, -9} {
		if err := p.Signal(sig); err == nil {
			t.Errorf("Signal(%d) = nil; want an error", sig)
		}
	}
	if err := p.Signal(0); err != nil {
		t.Errorf("Signal(0) on a running process = %v", err)
	}
	if isDead(p.Pid()) {
		t.Fatal("an invalid Signal killed the process")
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	ee := exitErr(t, p.Wait(ctx))
	if ee.Signal != syscall.SIGKILL {
		t.Errorf("Signal %v; want SIGKILL", ee.Signal)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after the reap = %v; want os.ErrProcessDone", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after the reap = %v; want nil", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill again = %v; want nil", err)
	}
}

// Stats of a running process.
func TestStatsWhileRunning(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Now()
	p := start(t, ctx, Command("sleep", "1000"))
	s1 := p.Stats()
	if s1.ExitCode != -1 {
		t.Errorf("Stats().ExitCode while running = %d; want -1", s1.ExitCode)
	}
	if s1.StartedAt.Before(t0.Add(-time.Second)) || s1.StartedAt.After(time.Now()) {
		t.Errorf("StartedAt = %v; started at about %v", s1.StartedAt, t0)
	}
	waitFor(t, 5*time.Second, "Duration to grow while running", func() bool {
		return p.Stats().Duration > s1.Duration
	})
	p.Kill()
	p.Wait(ctx)
	s2 := p.Stats()
	s3 := p.Stats()
	if s2.Duration != s3.Duration || s2.Duration <= 0 {
		t.Errorf("Duration after exit: %v then %v; want a fixed positive value", s2.Duration, s3.Duration)
	}
	if s2.ExitCode != -1 {
		t.Errorf("Stats().ExitCode after SIGKILL = %d; want -1", s2.ExitCode)
	}
}

// Write to a process that has exited fails, promptly, without a panic.
func TestWriteAfterExit(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("true"))
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := p.Write(short, []byte("late")); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write after exit = %d, %v; want a prompt error", n, err)
	}
}

// A Write blocked on a full pipe returns when the process is killed, or
// when stdin is closed.
func TestWriteBlockedUnblocks(t *testing.T) {
	for _, how := range []string{"Kill", "CloseStdin"} {
		t.Run(how, func(t *testing.T) {
			ctx := testCtx(t)
			p := start(t, ctx, Command("sleep", "1000"))
			errc := make(chan error, 1)
			started := make(chan struct{})
			go func() {
				close(started)
				_, err := p.Write(ctx, make([]byte, 16<<20))
				errc <- err
			}()
			<-started
			// Let the Write fill the pipe and block; it must return either way.
			time.Sleep(50 * time.Millisecond)
			if how == "Kill" {
				p.Kill()
			} else {
				p.CloseStdin()
			}
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("blocked Write returned nil")
				}
				if how == "CloseStdin" && !errors.Is(err, ErrStdinClosed) {
					t.Errorf("blocked Write after CloseStdin = %v; want ErrStdinClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("blocked Write still blocked 10s after %s", how)
			}
		})
	}
}

// A missing program given by path, or a script whose "#!" interpreter is
// missing: the error matches exec.ErrNotFound, names what is missing, and
// does not speak of $PATH, which was not searched. A name looked up in PATH
// does.
func TestStartNotFoundSaysWhat(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/netrunner/no-such-interpreter -x\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	relScript := Command("./script")
	relScript.Dir = dir
	// CRLF line ends: the kernel looks for "/bin/sh\r".
	crlf := filepath.Join(dir, "crlf")
	// A script whose interpreter is a script with a missing interpreter.
	nested := filepath.Join(dir, "nested")
	for name, text := range map[string]string{crlf: "#!/bin/sh\r\necho hi\r\n", nested: "#! " + script + "\n"} {
		if err := os.WriteFile(name, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	elfProgram, loader := elfWithMissingLoader(t, dir)
	for _, tc := range []struct {
		name    string
		cmd     *Cmd
		mention []string
		path    bool // the message speaks of $PATH
	}{
		{"missing-path", Command(filepath.Join(dir, "no-such-program")), []string{filepath.Join(dir, "no-such-program")}, false},
		{"missing-interpreter", Command(script), []string{script, `interpreter "/netrunner/no-such-interpreter"`}, false},
		{"missing-interpreter-in-dir", relScript, []string{"./script", `interpreter "/netrunner/no-such-interpreter"`}, false},
		{"missing-interpreter-crlf", Command(crlf), []string{crlf, `interpreter "/bin/sh\r"`}, false},
		{"missing-interpreter-nested", Command(nested), []string{nested, `interpreter "/netrunner/no-such-interpreter"`}, false},
		{"missing-in-PATH", Command("netrunner-no-such-program"), []string{"netrunner-no-such-program"}, true},
		{"missing-ELF-loader", Command(elfProgram), []string{elfProgram, `ELF interpreter "` + loader + `"`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			p, err := tc.cmd.Start(testCtx(t))
			if p != nil {
				reap(t, p)
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, exec.ErrNotFound) {
				t.Errorf("err = %v; want exec.ErrNotFound", err)
			}
			msg := errString(err)
			for _, want := range tc.mention {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %s", msg, want)
				}
			}
			if strings.Contains(msg, "$PATH") != tc.path {
				t.Errorf("error %q: speaks of $PATH %v, want %v", msg, !tc.path, tc.path)
			}
			if strings.Count(msg, "netrunner:") != 1 {
				t.Errorf("error %q: want the prefix once", msg)
			}
			check()
		})
	}
}

// elfWithMissingLoader copies /bin/true into dir with its dynamic loader's
// path changed to one that does not exist, and returns both paths.
func elfWithMissingLoader(t *testing.T, dir string) (program, loader string) {
	t.Helper()
	orig, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true in PATH")
	}
	b, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Skipf("%s is not ELF: %v", orig, err)
	}
	defer ef.Close()
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP || prog.Filesz < 12 {
			continue
		}
		// Same length as the real one, so nothing else in the file moves.
		loader = "/netrunner-" + strings.Repeat("x", int(prog.Filesz)-12)
		copy(b[prog.Off:], loader+"\x00")
		program = filepath.Join(dir, "elf-program")
		if err := os.WriteFile(program, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return program, loader
	}
	t.Skipf("%s is statically linked", orig)
	return "", ""
}
