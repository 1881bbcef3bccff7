//go:build linux

package netrunner

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pipeReadAll reads p's stdout to its end, failing after 60 s.
func pipeReadAll(t *testing.T, p *Process) []byte {
	t.Helper()
	var out []byte
	var err error
	within(t, 60*time.Second, "reading the pipeline's stdout", func() { out, err = io.ReadAll(p.Stdout) })
	if err != nil {
		t.Fatalf("reading the pipeline's stdout: %v (read %q)", err, out)
	}
	return out
}

// pipeStart starts pl and registers a cleanup that kills and reaps what is
// left of it.
func pipeStart(t *testing.T, ctx context.Context, pl *Pipe) *Process {
	t.Helper()
	p, err := pl.Start(ctx)
	if err != nil {
		t.Fatalf("Pipeline Start: %v", err)
	}
	t.Cleanup(func() { reap(t, p) })
	return p
}

// pidStage returns a stage that writes its pid into dir/name and then
// becomes cmd (exec), so that the test can find every stage.
func pidStage(dir, name, cmd string) *Cmd {
	// The file is sh's $0, so the script needs no quoting.
	return Command("sh", "-c", `echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec `+cmd, filepath.Join(dir, name))
}

// stagePids waits until every stage has written its pid file.
func stagePids(t *testing.T, dir string, names ...string) []int {
	t.Helper()
	var pids []int
	for _, name := range names {
		var pid int
		waitFor(t, 20*time.Second, "stage "+name+" to write its pid", func() bool {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return false
			}
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil
		})
		pids = append(pids, pid)
	}
	killPids(t, pids...)
	return pids
}

// The data between stages never passes through the Go process: 300 MB go
// from head to wc, and only wc's answer is read.
func TestPipelineDataBypassesGo(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	p := pipeStart(t, ctx, Pipeline(Command("head", "-c", "300000000", "/dev/zero"), Command("wc", "-c")))
	out := pipeReadAll(t, p)
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if strings.TrimSpace(string(out)) != "300000000" {
		t.Errorf("wc -c printed %q, want 300000000", out)
	}
	st := p.Stats()
	if st.BytesOut != int64(len(out)) || st.BytesOut != 10 {
		t.Errorf("Stats().BytesOut = %d, want %d, the size of wc's answer", st.BytesOut, len(out))
	}
	if st.BytesIn != 0 {
		t.Errorf("Stats().BytesIn = %d, want 0", st.BytesIn)
	}
	if st.ExitCode != 0 || p.ExitCode() != 0 {
		t.Errorf("exit codes %d, %d, want 0", st.ExitCode, p.ExitCode())
	}
	p.Stdout.Close()
	check()
}

// Write and CloseStdin feed the first stage.
func TestPipelineWriteToFirstStage(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	p := pipeStart(t, ctx, Pipeline(Command("tr", "a-z", "A-Z"), Command("cat")))
	in := "hello pipeline\nsecond line\n"
	for _, part := range []string{in[:7], in[7:]} {
		if n, err := p.Write(ctx, []byte(part)); err != nil || n != len(part) {
			t.Fatalf("Write(%q) = %d, %v", part, n, err)
		}
	}
	if err := p.CloseStdin(); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	if _, err := p.Write(ctx, []byte("late")); !errors.Is(err, ErrStdinClosed) {
		t.Errorf("Write after CloseStdin: %v, want ErrStdinClosed", err)
	}
	out := pipeReadAll(t, p)
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if string(out) != strings.ToUpper(in) {
		t.Errorf("output %q, want %q", out, strings.ToUpper(in))
	}
	if st := p.Stats(); st.BytesIn != int64(len(in)) || st.BytesOut != int64(len(in)) {
		t.Errorf("Stats BytesIn %d BytesOut %d, want %d each", st.BytesIn, st.BytesOut, len(in))
	}
	p.Stdout.Close()
	check()
}

// Cmd.Stdin of the first stage feeds the pipeline.
func TestPipelineFirstStageStdin(t *testing.T) {
	ctx := testCtx(t)
	first := Command("tr", "a-z", "A-Z")
	first.Stdin = strings.NewReader("from a reader\n")
	p := pipeStart(t, ctx, Pipeline(first, Command("cat")))
	if out := pipeReadAll(t, p); string(out) != "FROM A READER\n" {
		t.Errorf("output %q", out)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	p.Stdout.Close()
}

// Wait reports like bash's pipefail: the failed stages' errors joined
// rightmost first, so errors.As finds the rightmost failure (not the first
// to fail in time, nor the first in pipeline order); each names its stage
// and carries its stderr tail, with the package prefix once.
func TestPipelinePipefail(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	script := filepath.Join(t.TempDir(), "failing-stage")
	err := os.WriteFile(script, []byte("#!/bin/sh\ncat >/dev/null\nsleep 0.2\necho 'stage two broke' >&2\nexit 3\n"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	p := pipeStart(t, ctx, Pipeline(
		sh("echo data"),
		Command(script),
		sh("echo 'stage three broke first' >&2; exit 7"),
	))
	pipeReadAll(t, p)
	var werr error
	within(t, 30*time.Second, "Wait", func() { werr = p.Wait(ctx) })
	ee := exitErr(t, werr)
	if ee.Code != 7 || ee.Signal != 0 {
		t.Errorf("ExitError code %d signal %v, want the rightmost failure: the third stage's exit 7", ee.Code, ee.Signal)
	}
	if !strings.Contains(string(ee.Stderr), "stage three broke") {
		t.Errorf("ExitError.Stderr %q, want the third stage's stderr tail", ee.Stderr)
	}
	lines := strings.Split(werr.Error(), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "stage 3") || !strings.Contains(lines[1], "failing-stage") ||
		!strings.Contains(lines[1], "stage two broke") {
		t.Errorf("error %q, want the third stage's failure, then the second's", werr)
	}
	for _, line := range lines {
		if strings.Count(line, "netrunner:") != 1 {
			t.Errorf("error line %q: want the prefix once", line)
		}
	}
	var codes []int
	if joined, ok := werr.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			codes = append(codes, exitErr(t, e).Code)
		}
	}
	if len(codes) != 2 || codes[0] != 7 || codes[1] != 3 {
		t.Errorf("joined errors have codes %v, want [7 3]", codes)
	}
	if p.ExitCode() != 7 || p.Stats().ExitCode != 7 {
		t.Errorf("ExitCode %d, Stats().ExitCode %d, want 7", p.ExitCode(), p.Stats().ExitCode)
	}
	p.Stdout.Close()
	check()
}

// A failure of the last stage alone is reported too.
func TestPipelineLastStageFails(t *testing.T) {
	ctx := testCtx(t)
	p := pipeStart(t, ctx, Pipeline(Command("echo", "x"), sh("cat >/dev/null; echo last-err >&2; exit 9")))
	pipeReadAll(t, p)
	err := p.Wait(ctx)
	ee := exitErr(t, err)
	if ee.Code != 9 || !strings.Contains(string(ee.Stderr), "last-err") {
		t.Errorf("ExitError %+v (%v), want code 9 and the last stage's stderr", ee, err)
	}
	if !strings.Contains(err.Error(), "stage 2") {
		t.Errorf("error %q does not name the stage", err)
	}
	p.Stdout.Close()
}

// A stage killed by SIGPIPE after the stage it feeds had exited did not
// fail: `yes | head -1` succeeds, and `seq | sh -c 'head -1; exit 3' | cat`
// reports the exit 3 alone.
func TestPipelineSigpipeAfterReaderExit(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	p := pipeStart(t, ctx, Pipeline(Command("yes"), Command("head", "-1")))
	if out := pipeReadAll(t, p); string(out) != "y\n" {
		t.Errorf("yes | head -1 wrote %q", out)
	}
	if err := p.Wait(ctx); err != nil {
		t.Errorf("yes | head -1: Wait = %v, want nil", err)
	}
	p.Stdout.Close()

	p = pipeStart(t, ctx, Pipeline(Command("seq", "1", "1000000"), sh("head -1; exit 3"), Command("cat")))
	if out := pipeReadAll(t, p); string(out) != "1\n" {
		t.Errorf("the pipeline wrote %q", out)
	}
	err := p.Wait(ctx)
	if ee := exitErr(t, err); ee.Code != 3 {
		t.Errorf("Wait = %v, want the middle stage's exit 3", err)
	}
	if msg := errString(err); strings.Contains(msg, "SIGPIPE") || strings.Contains(msg, "broken pipe") ||
		!strings.Contains(msg, "stage 2") || strings.Count(msg, "netrunner:") != 1 {
		t.Errorf("error %q, want the exit 3 of stage 2 alone", msg)
	}
	p.Stdout.Close()
	check()
}

// A SIGPIPE while the stage it feeds still runs (it closed its stdin) is a
// failure, as in bash with pipefail.
func TestPipelineSigpipeWhileReaderRuns(t *testing.T) {
	ctx := testCtx(t)
	p := pipeStart(t, ctx, Pipeline(Command("yes"), sh("exec 0<&-; sleep 2")))
	pipeReadAll(t, p)
	err := p.Wait(ctx)
	if ee := exitErr(t, err); ee.Signal != syscall.SIGPIPE || !strings.Contains(err.Error(), "stage 1") {
		t.Errorf("Wait = %v, want the first stage's SIGPIPE", err)
	}
	p.Stdout.Close()
}

// Signal, Stop, Kill and the end of the context reach every stage.
func TestPipelineControlReachesEveryStage(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(p *Process, cancel context.CancelFunc) error
	}{
		{"Signal", func(p *Process, _ context.CancelFunc) error { return p.Signal(syscall.SIGTERM) }},
		{"Stop", func(p *Process, _ context.CancelFunc) error {
			err := p.Stop(context.Background())
			if ee := (*ExitError)(nil); !errors.As(err, &ee) {
				return errors.New("Stop did not return an *ExitError: " + errString(err))
			}
			return nil
		}},
		{"Kill", func(p *Process, _ context.CancelFunc) error { return p.Kill() }},
		{"ContextCancel", func(_ *Process, cancel context.CancelFunc) error { cancel(); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			p := pipeStart(t, ctx, Pipeline(
				pidStage(dir, "1", "sleep 1000"),
				pidStage(dir, "2", "sleep 1001"),
				pidStage(dir, "3", "sleep 1002"),
			))
			pids := stagePids(t, dir, "1", "2", "3")
			if pids[0] != p.Pid() {
				t.Errorf("Pid() = %d, want the first stage's %d", p.Pid(), pids[0])
			}
			if err := tc.end(p, cancel); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			within(t, 20*time.Second, "Done after "+tc.name, func() { <-p.Done() })
			for i, pid := range pids {
				if !isDead(pid) {
					t.Errorf("stage %d (pid %d) alive after %s and Done", i+1, pid, tc.name)
				}
			}
			err := p.Wait(context.Background())
			ee := exitErr(t, err)
			if ee.Signal == 0 {
				t.Errorf("Wait after %s: %v, want a signal death", tc.name, err)
			}
			if tc.name == "ContextCancel" && !errors.Is(err, context.Canceled) {
				t.Errorf("Wait after the context ended: %v, want context.Canceled", err)
			}
			if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal after Done: %v, want os.ErrProcessDone", err)
			}
			p.Stdout.Close()
			check()
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// A stage that fails to start (a missing binary in the middle) stops the
// stages already started and leaks nothing.
func TestPipelineStageFailsToStart(t *testing.T) {
	check := leakCheck(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "third-ran")
	p, err := Pipeline(
		pidStage(dir, "1", "sleep 1000"),
		Command("netrunner-no-such-binary-xyz"),
		Command("touch", marker),
	).Start(testCtx(t))
	if p != nil {
		reap(t, p)
		t.Fatalf("Start succeeded with a missing stage")
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("error %v, want exec.ErrNotFound", err)
	}
	if msg := errString(err); !strings.Contains(msg, "netrunner-no-such-binary-xyz") || !strings.Contains(msg, "stage 2") {
		t.Errorf("error %q does not name the missing stage", err)
	}
	if strings.Count(errString(err), "netrunner:") != 1 {
		t.Errorf("error %q: want the prefix once", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the stage after the missing one ran")
	}
	// The first stage may have been killed before it wrote its pid.
	if b, err := os.ReadFile(filepath.Join(dir, "1")); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			killPids(t, pid)
			if !isDead(pid) {
				t.Errorf("the first stage (pid %d) is still running", pid)
			}
		}
	}
	check()
}

// A pipeline whose first stage has an invalid option starts nothing.
func TestPipelineInvalid(t *testing.T) {
	bad := Command("cat")
	bad.ChunkSize = -1
	withStdin := Command("cat")
	withStdin.Stdin = strings.NewReader("x")
	withPTY := Command("cat")
	withPTY.PTY = &Winsize{Rows: 1, Cols: 1}
	for name, pl := range map[string]*Pipe{
		"empty":           Pipeline(),
		"nil stage":       Pipeline(Command("true"), nil),
		"bad option":      Pipeline(Command("true"), bad),
		"stdin on stage2": Pipeline(Command("true"), withStdin),
		"PTY stage":       Pipeline(Command("true"), withPTY),
	} {
		p, err := pl.Start(testCtx(t))
		if p != nil {
			reap(t, p)
		}
		if !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: %v, want ErrInvalidCommand", name, err)
		}
	}
}

// Done closes only once every stage is done, whichever ends first.
func TestPipelineDoneAfterAllStages(t *testing.T) {
	t.Run("last-lingers", func(t *testing.T) {
		check := leakCheck(t)
		dir := t.TempDir()
		ctx := testCtx(t)
		p := pipeStart(t, ctx, Pipeline(Command("true"), pidStage(dir, "2", "sleep 1000")))
		last := stagePids(t, dir, "2")[0]
		first := p.Pid()
		waitFor(t, 20*time.Second, "the first stage to be reaped", func() bool { return isDead(first) })
		select {
		case <-p.Done():
			t.Fatalf("Done closed while the last stage runs")
		default:
		}
		if p.ExitCode() != -1 {
			t.Errorf("ExitCode %d while a stage runs, want -1", p.ExitCode())
		}
		syscall.Kill(last, syscall.SIGKILL)
		within(t, 20*time.Second, "Done after the last stage died", func() { <-p.Done() })
		p.Stdout.Close()
		check()
	})
	t.Run("first-lingers", func(t *testing.T) {
		check := leakCheck(t)
		dir := t.TempDir()
		ctx := testCtx(t)
		before := children()
		p := pipeStart(t, ctx, Pipeline(pidStage(dir, "1", "sleep 1000"), Command("true")))
		first := stagePids(t, dir, "1")[0]
		pipeReadAll(t, p) // EOF: the last stage is gone
		// Give a wrong Done a chance to show: wait until the last stage is
		// surely reaped (no new child of ours but the first stage is left).
		waitFor(t, 20*time.Second, "the last stage to be reaped", func() bool {
			for _, c := range newChildren(before) {
				if c.pid != first {
					return false
				}
			}
			return true
		})
		select {
		case <-p.Done():
			t.Fatalf("Done closed while the first stage runs")
		default:
		}
		syscall.Kill(first, syscall.SIGKILL)
		within(t, 20*time.Second, "Done after the first stage died", func() { <-p.Done() })
		if err := p.Wait(ctx); exitErr(t, err).Signal != syscall.SIGKILL {
			t.Errorf("Wait: %v, want the first stage's SIGKILL", err)
		}
		p.Stdout.Close()
		check()
	})
}

// A Pipe starts once.
func TestPipelineStartTwice(t *testing.T) {
	ctx := testCtx(t)
	pl := Pipeline(Command("true"), Command("true"))
	p := pipeStart(t, ctx, pl)
	if p2, err := pl.Start(ctx); err == nil {
		reap(t, p2)
		t.Errorf("second Start of a Pipe succeeded")
	}
	within(t, 20*time.Second, "Wait", func() { p.Wait(ctx) })
	p.Stdout.Close()
}

// A stage other than the last with StderrStream has a stderr Stream that the
// pipeline's Process does not expose. Either that is refused up front, or
// the stage's stderr is still drained: a stage writing lots of stderr must
// not hang the pipeline.
func TestPipelineMiddleStageStderrStream(t *testing.T) {
	check := leakCheck(t)
	ctx := testCtx(t)
	first := sh(`head -c 1048576 /dev/zero >&2; echo done`)
	first.Stderr = StderrStream
	p, err := Pipeline(first, Command("cat")).Start(ctx)
	if errors.Is(err, ErrInvalidCommand) {
		check()
		return
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { reap(t, p) })
	var out []byte
	within(t, 15*time.Second, "a pipeline whose first stage writes 1 MiB to a StderrStream nobody can read", func() {
		out, err = io.ReadAll(p.Stdout)
	})
	if err != nil || string(out) != "done\n" {
		t.Errorf("output %q, %v", out, err)
	}
	within(t, 20*time.Second, "Wait", func() { err = p.Wait(ctx) })
	if err != nil {
		t.Errorf("Wait: %v", err)
	}
	p.Stdout.Close()
	check()
}
