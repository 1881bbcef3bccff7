//go:build linux

package netrunner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// badCmds are invalid Cmds; each would touch marker if it ever ran.
func badCmds(marker string) []struct {
	name  string
	cmd   *Cmd
	field []string // the error names one of these; empty: not checked
} {
	script := "touch " + marker
	withSh := func(f func(c *Cmd)) *Cmd {
		c := Command("sh", "-c", script)
		f(c)
		return c
	}
	return []struct {
		name  string
		cmd   *Cmd
		field []string
	}{
		{"empty-name", Command(""), nil},
		{"empty-literal", &Cmd{}, nil},
		{"nul-in-name", Command("s\x00h", "-c", script), []string{"Path", "Args[0]"}},
		{"nul-in-path", withSh(func(c *Cmd) { c.Path = "/bin/s\x00h" }), []string{"Path"}},
		{"nul-in-arg", Command("sh", "-c", script, "a\x00b"), []string{"Args[3]"}},
		{"nul-in-arg1", Command("sh", "-c\x00", script), []string{"Args[1]"}},
		{"nul-in-env", withSh(func(c *Cmd) { c.Env = []string{"A=b\x00c"} }), []string{"Env[0]"}},
		{"nul-in-env-key", withSh(func(c *Cmd) { c.Env = []string{"PATH=/bin", "A\x00=b"} }), []string{"Env[1]"}},
		{"env-no-equals", withSh(func(c *Cmd) { c.Env = []string{"NOEQUALS"} }), []string{"Env[0]"}},
		{"env-empty-key", withSh(func(c *Cmd) { c.Env = []string{"=value"} }), []string{"Env[0]"}},
		{"env-empty", withSh(func(c *Cmd) { c.Env = []string{""} }), []string{"Env[0]"}},
		{"nul-in-dir", withSh(func(c *Cmd) { c.Dir = "/tmp\x00x" }), []string{"Dir"}},
		{"chunk-negative", withSh(func(c *Cmd) { c.ChunkSize = -1 }), []string{"ChunkSize"}},
		{"chunk-huge", withSh(func(c *Cmd) { c.ChunkSize = 64<<20 + 1 }), []string{"ChunkSize"}},
		{"pipe-negative", withSh(func(c *Cmd) { c.PipeSize = -1 }), []string{"PipeSize"}},
		{"maxoutput-negative", withSh(func(c *Cmd) { c.MaxOutput = -1 }), []string{"MaxOutput"}},
		{"stderr-unknown", withSh(func(c *Cmd) { c.Stderr = StderrMode(99) }), []string{"Stderr"}},
		{"stderr-negative", withSh(func(c *Cmd) { c.Stderr = StderrMode(-1) }), []string{"Stderr"}},
		{"stdin-closed-file", withSh(func(c *Cmd) { c.Stdin = closedFile() }), []string{"Stdin"}},
	}
}

// Every invalid field is ErrInvalidCommand naming the field, from every
// entry point, with nothing spawned and nothing leaked.
func TestBadInput(t *testing.T) {
	entries := []struct {
		name string
		run  func(ctx context.Context, c *Cmd) error
	}{
		{"Start", func(ctx context.Context, c *Cmd) error {
			p, err := c.Start(ctx)
			if err == nil {
				p.Kill()
				p.Wait(ctx)
				p.Stdout.Close()
			} else if p != nil {
				return errors.New("Start returned a Process with its error")
			}
			return err
		}},
		{"Run", func(ctx context.Context, c *Cmd) error {
			_, err := c.Run(ctx)
			return err
		}},
		{"Output", func(ctx context.Context, c *Cmd) error {
			out, err := c.Output(ctx)
			if err != nil && len(out) > 0 {
				return errors.New("Output returned data with an invalid command")
			}
			return err
		}},
		{"Chunks", func(ctx context.Context, c *Cmd) error {
			var errs []error
			n := 0
			for b, err := range c.Chunks(ctx) {
				n++
				if b != nil {
					return errors.New("Chunks yielded data")
				}
				errs = append(errs, err)
			}
			if n != 1 {
				return errors.New("Chunks yielded other than once")
			}
			return errs[0]
		}},
		{"Lines", func(ctx context.Context, c *Cmd) error {
			var errs []error
			n := 0
			for b, err := range c.Lines(ctx) {
				n++
				if b != nil {
					return errors.New("Lines yielded a line")
				}
				errs = append(errs, err)
			}
			if n != 1 {
				return errors.New("Lines yielded other than once")
			}
			return errs[0]
		}},
	}
	check := leakCheck(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	for _, e := range entries {
		for _, tc := range badCmds(filepath.Join(dir, e.name+"-marker")) {
			t.Run(e.name+"/"+tc.name, func(t *testing.T) {
				kids := len(children())
				err := e.run(ctx, tc.cmd)
				if err == nil {
					t.Fatalf("%s accepted it", e.name)
				}
				if !errors.Is(err, ErrInvalidCommand) {
					t.Fatalf("err = %v; want ErrInvalidCommand", err)
				}
				if len(tc.field) > 0 && !containsAny(err.Error(), tc.field) {
					t.Errorf("err %q names none of %q", err, tc.field)
				}
				if n := len(children()); n > kids {
					t.Errorf("%d children after, %d before", n, kids)
				}
			})
		}
		if _, err := os.Stat(filepath.Join(dir, e.name+"-marker")); err == nil {
			t.Errorf("%s: an invalid command ran (its marker file exists)", e.name)
		}
	}
	check()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Errors for an invalid field name the command too.
func TestBadInputNamesCommand(t *testing.T) {
	c := Command("my-program")
	c.ChunkSize = -5
	_, err := c.Output(testCtx(t))
	if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), "my-program") || !strings.Contains(err.Error(), "ChunkSize") {
		t.Errorf("err = %v; want ErrInvalidCommand naming my-program and ChunkSize", err)
	}
}

// Values at the edge of the valid range are accepted.
func TestEdgeValuesValid(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		set  func(c *Cmd)
	}{
		{"chunk-64MiB", func(c *Cmd) { c.ChunkSize = 64 << 20 }},
		{"chunk-1", func(c *Cmd) { c.ChunkSize = 1 }},
		{"pipe-4096", func(c *Cmd) { c.PipeSize = 4096 }},
		{"pipe-1MiB", func(c *Cmd) { c.PipeSize = 1 << 20 }},
		{"maxoutput-1", func(c *Cmd) { c.MaxOutput = 3 }},
		{"env-empty-value", func(c *Cmd) { c.Env = []string{"A="} }},
		{"env-equals-in-value", func(c *Cmd) { c.Env = []string{"A=b=c"} }},
		{"empty-arg", func(c *Cmd) { c.Args = append(c.Args, "") }},
		{"stderr-inherit", func(c *Cmd) { c.Stderr = StderrInherit }},
		{"killtimeout-negative", func(c *Cmd) { c.KillTimeout = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Command("printf", "abc")
			tc.set(c)
			out, err := c.Output(ctx)
			if err != nil || string(out) != "abc" {
				t.Errorf("Output = %q, %v", out, err)
			}
		})
	}
}

// Signal numbers outside the valid range are errors, and reach nobody.
func TestBadSignal(t *testing.T) {
	ctx := testCtx(t)
	p := start(t, ctx, Command("sleep", "1000"))
	for _, sig := range []syscall.Signal{-1, -15, 65, 128, 1 << 20} {
		if err := p.Signal(sig); err == nil {
			t.Errorf("Signal(%d) = nil", int(sig))
		}
	}
	if isDead(p.Pid()) {
		t.Fatal("the process died of an invalid Signal")
	}
}

// closedFile returns an *os.File that has been closed.
func closedFile() *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	r.Close()
	w.Close()
	return r
}
