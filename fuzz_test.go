//go:build linux

package netrunner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzNowhere prefixes every program name the fuzzer makes: it is under a
// directory that does not exist, so a Cmd that passes validation fails at
// the spawn (execve: ENOENT) and nothing ever runs. The kernel resolves a
// path component by component, so not even "/nonexistent/../bin/true"
// escapes it ("nonexistent" is looked up first, and fails).
const fuzzNowhere = "/nonexistent/netrunner-fuzz/"

// fuzzCmdSpec is one fuzz input, as the fuzz function receives it.
type fuzzCmdSpec struct {
	flags                  uint8
	path, args, env, dir   string
	chunk, pipe, stderr    int
	maxOutput, killTimeout int64
}

// Flag bits of fuzzCmdSpec.flags.
const (
	fuzzEmptyPath = 1 << iota // Path is "" (else fuzzNowhere+path)
	fuzzNilArgs               // Args is nil (else args split at '\n')
	fuzzNilEnv                // Env is nil (else env split at '\n'; "" is an empty, non-nil Env)
	fuzzGoodDir               // Dir is an existing directory (else dir as is)
	fuzzPTY                   // PTY is set
	fuzzStdin0                // bits 5 and 6 choose Stdin: see fuzzCmd
	fuzzStdin1                //
	fuzzRun                   // call Run instead of Start
)

// fuzzCmd builds the Cmd for a fuzz input. Whatever the input, the program
// it names cannot exist (see fuzzNowhere).
func fuzzCmd(s fuzzCmdSpec, goodDir string, devNull *os.File) *Cmd {
	c := &Cmd{
		ChunkSize:   s.chunk,
		PipeSize:    s.pipe,
		MaxOutput:   s.maxOutput,
		Stderr:      StderrMode(s.stderr),
		KillTimeout: time.Duration(s.killTimeout),
		Dir:         s.dir,
	}
	if s.flags&fuzzEmptyPath == 0 {
		c.Path = fuzzNowhere + s.path
	}
	if s.flags&fuzzNilArgs == 0 {
		c.Args = strings.Split(s.args, "\n")
		// With an empty Path, Args[0] is the program: keep it nowhere too.
		if c.Path == "" && c.Args[0] != "" {
			c.Args[0] = fuzzNowhere + c.Args[0]
		}
	}
	if s.flags&fuzzNilEnv == 0 {
		c.Env = []string{}
		if s.env != "" {
			c.Env = strings.Split(s.env, "\n")
		}
	}
	if s.flags&fuzzGoodDir != 0 {
		c.Dir = goodDir
	}
	if s.flags&fuzzPTY != 0 {
		c.PTY = &Winsize{Rows: 24, Cols: 80}
	}
	switch (s.flags / fuzzStdin0) & 3 {
	case 1:
		c.Stdin = (*os.File)(nil)
	case 2:
		c.Stdin = devNull
	case 3:
		c.Stdin = strings.NewReader(s.args)
	}
	return c
}

// fuzzChildren lists the pids of the test process's children, sorted,
// cheaply: from /proc/self/task/*/children, a few small files, where
// children() reads the stat file of every process of the system (which
// made it most of the fuzz function's time). Without that file (a kernel
// without CONFIG_PROC_CHILDREN) it falls back to children().
func fuzzChildren() []int {
	var pids []int
	tasks, err := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if err != nil {
			break
		}
		var b []byte
		b, err = os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if os.IsNotExist(err) && task.Name() != strconv.Itoa(os.Getpid()) {
			err = nil // the thread ended meanwhile
		}
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
	}
	if err != nil {
		pids = pids[:0]
		for _, pi := range children() {
			pids = append(pids, pi.pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// fuzzRefName is the command's name as the API describes it: Args[0], as in
// exec.Cmd, and Path when Args is empty (or Args[0] is "").
func fuzzRefName(c *Cmd) string {
	if len(c.Args) > 0 && c.Args[0] != "" {
		return c.Args[0]
	}
	return c.Path
}

// fuzzRefInvalid is the reference for validation, written from the
// documented rules (API.md, ErrInvalidCommand and the Cmd field docs), not
// from validate: it returns why c is invalid, or "" when it is valid.
func fuzzRefInvalid(c *Cmd) string {
	if fuzzRefName(c) == "" {
		return "empty name"
	}
	hasNUL := func(s string) bool { return strings.ContainsRune(s, 0) }
	if hasNUL(c.Path) {
		return "NUL in Path"
	}
	for i, a := range c.Args {
		if hasNUL(a) {
			return fmt.Sprintf("NUL in Args[%d]", i)
		}
	}
	for i, kv := range c.Env {
		if hasNUL(kv) {
			return fmt.Sprintf("NUL in Env[%d]", i)
		}
		if eq := strings.IndexByte(kv, '='); eq <= 0 {
			return fmt.Sprintf("Env[%d] not KEY=VALUE with a non-empty KEY", i)
		}
	}
	if hasNUL(c.Dir) {
		return "NUL in Dir"
	}
	if c.ChunkSize < 0 || c.ChunkSize > 64<<20 {
		return "ChunkSize outside 0..64 MiB"
	}
	if c.PipeSize < 0 || c.PipeSize > math.MaxInt32 {
		return "PipeSize outside 0..MaxInt32"
	}
	if c.MaxOutput < 0 {
		return "negative MaxOutput"
	}
	switch c.Stderr {
	case StderrTail, StderrStream, StderrToStdout, StderrDiscard, StderrInherit:
	default:
		return "unknown Stderr mode"
	}
	// Impossible combinations: a nil *os.File is no stdin; on a PTY, stdin
	// and stderr are the terminal, so stderr can only be kept as the tail
	// of the terminal or merged into it, and stdin cannot be a file.
	f, isFile := c.Stdin.(*os.File)
	if isFile && f == nil {
		return "nil *os.File Stdin"
	}
	if c.PTY != nil {
		if c.Stderr != StderrTail && c.Stderr != StderrToStdout {
			return "PTY with a Stderr mode other than Tail or ToStdout"
		}
		if isFile {
			return "PTY with an *os.File Stdin"
		}
	}
	return ""
}

// FuzzCmdValidation feeds random Cmds to Start (or Run). Properties: no
// panic; the library agrees with fuzzRefInvalid; an invalid Cmd fails with
// ErrInvalidCommand, spawns nothing and leaks no descriptor; a valid one
// fails (its program cannot exist), but not with ErrInvalidCommand, and
// leaks nothing either; every error names the command.
func FuzzCmdValidation(f *testing.F) {
	if _, err := os.Stat("/nonexistent"); err == nil {
		f.Skip("/nonexistent exists: the fuzzer could run real programs")
	}
	// Whatever exists once anything ran (the parent-death watchdog, the
	// poller's descriptors) exists before the baselines below.
	warmUp(f)
	goodDir := f.TempDir()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { devNull.Close() })

	add := func(s fuzzCmdSpec) {
		f.Add(s.flags, s.path, s.args, s.env, s.dir, s.chunk, s.pipe, s.stderr, s.maxOutput, s.killTimeout)
	}
	valid := fuzzCmdSpec{path: "prog", args: "prog\n-x\nvalue", env: "A=1\nB=2=3"}
	add(valid)
	for _, mod := range []func(s *fuzzCmdSpec){
		func(s *fuzzCmdSpec) { s.flags = fuzzEmptyPath | fuzzNilArgs },               // empty name
		func(s *fuzzCmdSpec) { s.flags = fuzzEmptyPath; s.args = "" },                // Args {""}
		func(s *fuzzCmdSpec) { s.flags = fuzzEmptyPath; s.args = "prog\nx" },         // name from Args[0]
		func(s *fuzzCmdSpec) { s.flags = fuzzNilArgs | fuzzNilEnv },                  // name from Path
		func(s *fuzzCmdSpec) { s.path = "pr\x00og" },                                 // NUL in Path
		func(s *fuzzCmdSpec) { s.args = "prog\na\x00b" },                             // NUL in an arg
		func(s *fuzzCmdSpec) { s.args = "\x00" },                                     // NUL in Args[0]
		func(s *fuzzCmdSpec) { s.env = "A=\x00" },                                    // NUL in Env
		func(s *fuzzCmdSpec) { s.env = "=x" },                                        // empty key
		func(s *fuzzCmdSpec) { s.env = "NOEQUALS" },                                  // no '='
		func(s *fuzzCmdSpec) { s.env = "A=1\n" },                                     // an empty entry
		func(s *fuzzCmdSpec) { s.env = "A=" },                                        // empty value: valid
		func(s *fuzzCmdSpec) { s.dir = "/tmp\x00" },                                  // NUL in Dir
		func(s *fuzzCmdSpec) { s.dir = "/" },                                         // valid Dir
		func(s *fuzzCmdSpec) { s.dir = "no/such/dir" },                               // missing Dir
		func(s *fuzzCmdSpec) { s.flags = fuzzGoodDir },                               // good Dir
		func(s *fuzzCmdSpec) { s.chunk = -1 },                                        // negative ChunkSize
		func(s *fuzzCmdSpec) { s.chunk = 64 << 20 },                                  // largest ChunkSize
		func(s *fuzzCmdSpec) { s.chunk = 64<<20 + 1 },                                // too large
		func(s *fuzzCmdSpec) { s.chunk = math.MaxInt },                               // huge
		func(s *fuzzCmdSpec) { s.chunk = math.MinInt },                               // very negative
		func(s *fuzzCmdSpec) { s.pipe = -1 },                                         // negative PipeSize
		func(s *fuzzCmdSpec) { s.pipe = 4096 },                                       // valid PipeSize
		func(s *fuzzCmdSpec) { s.pipe = math.MaxInt },                                // huge PipeSize: invalid
		func(s *fuzzCmdSpec) { s.pipe = int(min(1<<31, math.MaxInt)) },               // just past the kernel's range; 32-bit: the largest int
		func(s *fuzzCmdSpec) { s.maxOutput = -1 },                                    // negative MaxOutput
		func(s *fuzzCmdSpec) { s.maxOutput = math.MaxInt64 },                         // huge MaxOutput
		func(s *fuzzCmdSpec) { s.stderr = -1 },                                       // unknown Stderr modes
		func(s *fuzzCmdSpec) { s.stderr = 5 },                                        //
		func(s *fuzzCmdSpec) { s.stderr = int(StderrInherit) },                       // every valid one
		func(s *fuzzCmdSpec) { s.stderr = int(StderrStream) },                        //
		func(s *fuzzCmdSpec) { s.stderr = int(StderrDiscard) },                       //
		func(s *fuzzCmdSpec) { s.stderr = int(StderrToStdout) },                      //
		func(s *fuzzCmdSpec) { s.killTimeout = -1 },                                  // any KillTimeout is valid
		func(s *fuzzCmdSpec) { s.killTimeout = math.MinInt64 },                       //
		func(s *fuzzCmdSpec) { s.killTimeout = math.MaxInt64 },                       //
		func(s *fuzzCmdSpec) { s.flags = fuzzPTY },                                   // PTY
		func(s *fuzzCmdSpec) { s.flags = fuzzPTY; s.stderr = int(StderrStream) },     // PTY and a stderr stream
		func(s *fuzzCmdSpec) { s.flags = fuzzPTY | 2*fuzzStdin0 },                    // PTY and a file Stdin
		func(s *fuzzCmdSpec) { s.flags = fuzzPTY | 3*fuzzStdin0 },                    // PTY and a Reader
		func(s *fuzzCmdSpec) { s.flags = 1 * fuzzStdin0 },                            // nil *os.File
		func(s *fuzzCmdSpec) { s.flags = 2 * fuzzStdin0 },                            // a file
		func(s *fuzzCmdSpec) { s.flags = 3 * fuzzStdin0 },                            // a Reader
		func(s *fuzzCmdSpec) { s.flags = fuzzRun },                                   // Run
		func(s *fuzzCmdSpec) { s.flags = fuzzRun; s.chunk = -7 },                     // Run, invalid
		func(s *fuzzCmdSpec) { s.path = "../../bin/true"; s.args = "true" },          // no escape from nowhere
		func(s *fuzzCmdSpec) { s.flags = fuzzEmptyPath; s.args = "../../../bin/sh" }, // nor through Args[0]
	} {
		s := valid
		mod(&s)
		add(s)
	}

	f.Fuzz(func(t *testing.T, flags uint8, path, args, env, dir string, chunk, pipe, stderr int, maxOutput, killTimeout int64) {
		spec := fuzzCmdSpec{flags, path, args, env, dir, chunk, pipe, stderr, maxOutput, killTimeout}
		c := fuzzCmd(spec, goodDir, devNull)
		why := fuzzRefInvalid(c)

		fds := fdCount(t)
		kids := fuzzChildren()
		var p *Process
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if flags&fuzzRun != 0 {
			var res *Result
			res, err = c.Run(ctx)
			if res != nil {
				t.Errorf("Run returned a Result (%+v) for a program that cannot exist; err %v", res, err)
			}
		} else {
			p, err = c.Start(ctx)
		}
		if p != nil || err == nil {
			if p != nil {
				p.Kill()
				p.Wait(ctx)
				p.Stdout.Close()
				if p.Stderr != nil {
					p.Stderr.Close()
				}
			}
			t.Fatalf("Start of %#v returned %v, %v; want an error (invalid: %q; else the program cannot exist)", c, p, err, why)
		}

		msg := err.Error()
		shown := append([]string{fuzzRefName(c)}, c.argv()[1:]...) // Path stands for an empty Args[0]
		if want := "netrunner: " + commandName(shown) + ": "; !strings.HasPrefix(msg, want) {
			t.Errorf("error %q does not start with %q, naming the command", msg, want)
		}
		if why != "" {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Errorf("invalid Cmd (%s) %#v: err = %v; want ErrInvalidCommand", why, c, err)
			}
			// Invalid stays invalid, and does not count as a start.
			if _, err2 := c.Start(ctx); !errors.Is(err2, ErrInvalidCommand) {
				t.Errorf("invalid Cmd (%s), second Start: err = %v; want ErrInvalidCommand", why, err2)
			}
		} else if errors.Is(err, ErrInvalidCommand) {
			t.Errorf("valid Cmd %#v rejected: %v", c, err)
		}
		// Nothing is left of the attempt: its descriptors are closed and
		// no new child is left (a failed execve's child is reaped within
		// the spawn) by the time Start returns. Only new children count: a
		// process left by an earlier test may be reaped meanwhile.
		for _, pid := range fuzzChildren() {
			if !slices.Contains(kids, pid) {
				pi, _ := procStat(pid)
				t.Errorf("Cmd %#v (invalid: %q): a new child after Start: pid %d %v", c, why, pid, pi)
			}
		}
		if n := fdCount(t); n > fds {
			t.Errorf("descriptors leaked (Cmd %#v, err %v): %d open, %d before;%s", c, err, n, fds, openFDs())
		}
	})
}
