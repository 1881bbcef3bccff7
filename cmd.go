package netrunner

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Command returns a Cmd that runs the named program with the given
// arguments, like exec.Command. Nothing runs until a method of Cmd is
// called; the name is looked up in PATH then, unless it contains a slash.
func Command(name string, args ...string) *Cmd {
	return &Cmd{Path: name, Args: append([]string{name}, args...)}
}

// A Cmd describes a program to run. Set its fields, then call one of Start,
// Run, Output, Chunks or Lines, once. The zero value of every option is a
// sensible default. On a PTY, a child that turns canonical mode off (stty
// raw) reads no end-of-file from the terminal: it ends when it exits by
// itself or the context ends.
type Cmd struct {
	Path string   // the program; resolved like exec.LookPath when started
	Args []string // Args[0] is the name, as in exec.Cmd; empty means {Path}
	Env  []string // KEY=VALUE entries; nil: inherit the parent's environment
	Dir  string   // "": the parent's working directory

	// Stdin: nil gives the process a pipe that the caller feeds with
	// Process.Write and ends with Process.CloseStdin (Run, Output, Chunks and
	// Lines close it at once). An *os.File is handed to the child as is. Any
	// other io.Reader is copied in with backpressure; when the child exits or
	// closes its stdin early, the copy stops quietly (EPIPE is not an error
	// of the run). Wait does not wait for a Read of the Reader in progress
	// when the child exits; the copy ends when that Read returns. An
	// *os.File that is the program's controlling terminal puts the child in
	// the terminal's foreground until it is reaped (see Terminals in the
	// package doc). Stopped there with Ctrl-Z, the child keeps the terminal,
	// and Ctrl-C goes to it, stopped: only the context ends it, so give such
	// a run a context with a deadline or one that signal handling ends.
	Stdin io.Reader

	Stderr StderrMode // what happens to the child's stderr; default StderrTail

	ChunkSize   int           // most bytes one chunk holds; 0: 64 KiB; at most 64 MiB
	PipeSize    int           // kernel pipe buffer asked for with F_SETPIPE_SZ (Linux; ErrUnsupported elsewhere); 0: kernel default
	KillTimeout time.Duration // grace between SIGTERM and SIGKILL when stopping; 0: 5s; <0: SIGKILL at once

	// MaxOutput is the most stdout bytes Run and Output keep; 0: no limit.
	// Past it the process is stopped and the error wraps ErrMaxOutput, with
	// the first MaxOutput bytes in the Result. With StderrStream, the
	// Result's stderr is cut at MaxOutput bytes too. Start, Chunks and Lines
	// do not use it.
	MaxOutput int64

	PTY            *Winsize          // non-nil: run on a pseudo-terminal of that size (Linux; ErrUnsupported elsewhere); a child that turns canonical mode off reads no end-of-file from it
	Cgroup         string            // Linux: a cgroup v2 path, relative to the cgroup2 mount; ErrUnsupported elsewhere
	CgroupSettings map[string]string // written into the cgroup's files before the child runs

	Host Host // where the command runs; nil: this machine (see SSH)

	// started is set by the first start. An int32 with atomic operations,
	// not an atomic.Bool, keeps Cmd copyable (a Daemon runs copies of its
	// template), as os/exec does.
	started int32
}

// Winsize is a terminal's size in character cells.
type Winsize struct {
	Rows, Cols uint16 // lines and columns
}

// StderrMode says what happens to a child's stderr.
type StderrMode int

const (
	StderrTail     StderrMode = iota // drained in the background, last 64 KiB kept; never blocks the child
	StderrStream                     // Process.Stderr is a demand-driven Stream of its own
	StderrToStdout                   // the same pipe as stdout (2>&1)
	StderrDiscard                    // /dev/null
	StderrInherit                    // the parent's stderr
)

const (
	defaultChunkSize   = 64 << 10
	maxChunkSize       = 64 << 20
	defaultKillTimeout = 5 * time.Second
	stderrTailSize     = 64 << 10
)

// name is how errors refer to the command: its whole command line,
// shortened when long (see commandName), starting with the program (Path
// when Args[0] is empty). Errors, and a Daemon's log, show the arguments:
// a secret passed as one shows there too.
func (c *Cmd) name() string {
	argv := c.argv()
	if argv[0] == "" && c.Path != "" {
		argv = append([]string{c.Path}, argv[1:]...)
	}
	return commandName(argv)
}

// program is the name of the program to run, before any PATH search.
func (c *Cmd) program() string {
	if len(c.Args) > 0 && c.Args[0] != "" {
		return c.Args[0]
	}
	return c.Path
}

func (c *Cmd) chunkSize() int {
	if c.ChunkSize == 0 {
		return defaultChunkSize
	}
	return c.ChunkSize
}

func (c *Cmd) killTimeout() time.Duration {
	if c.KillTimeout == 0 {
		return defaultKillTimeout
	}
	return c.KillTimeout
}

// validate reports, before anything is spawned, every value that cannot work.
func (c *Cmd) validate() error {
	if c.program() == "" {
		return invalidf(c.name(), "empty command name")
	}
	checks := []struct {
		field, value string
	}{{"Path", c.Path}, {"Dir", c.Dir}}
	for i, a := range c.Args {
		checks = append(checks, struct{ field, value string }{fmt.Sprintf("Args[%d]", i), a})
	}
	for _, ch := range checks {
		if strings.IndexByte(ch.value, 0) >= 0 {
			return invalidf(c.name(), "%s contains a NUL byte", ch.field)
		}
	}
	for i, kv := range c.Env {
		if strings.IndexByte(kv, 0) >= 0 {
			return invalidf(c.name(), "Env[%d] contains a NUL byte", i)
		}
		entry := kv
		if runtime.GOOS == "windows" {
			// Windows keeps each drive's directory under a key that starts
			// with "=" ("=C:=C:\dir"), and os.Environ has them.
			entry = strings.TrimPrefix(kv, "=")
		}
		if k, _, ok := strings.Cut(entry, "="); !ok || k == "" {
			return invalidf(c.name(), "Env[%d] %q is not KEY=VALUE", i, kv)
		}
	}
	switch {
	case c.ChunkSize < 0 || c.ChunkSize > maxChunkSize:
		return invalidf(c.name(), "ChunkSize %d is outside 0..%d", c.ChunkSize, maxChunkSize)
	case c.PipeSize < 0 || c.PipeSize > math.MaxInt32:
		return invalidf(c.name(), "PipeSize %d is outside 0..%d", c.PipeSize, math.MaxInt32)
	case c.MaxOutput < 0:
		return invalidf(c.name(), "MaxOutput %d is negative", c.MaxOutput)
	case c.Stderr < StderrTail || c.Stderr > StderrInherit:
		return invalidf(c.name(), "Stderr mode %d is unknown", c.Stderr)
	}
	f, isFile := c.Stdin.(*os.File)
	if isFile && f == nil {
		return invalidf(c.name(), "Stdin is a nil *os.File")
	}
	if isFile && !isOpen(f) {
		return invalidf(c.name(), "Stdin is a closed *os.File")
	}
	if c.PTY != nil {
		if c.Stderr != StderrTail && c.Stderr != StderrToStdout {
			return invalidf(c.name(), "Stderr mode %d with PTY: stderr is the terminal", c.Stderr)
		}
		if isFile {
			return invalidf(c.name(), "Stdin is an *os.File with PTY: stdin is the terminal")
		}
	}
	return c.validatePlatform()
}

// lookPath resolves the program like exec.LookPath.
func (c *Cmd) lookPath() (string, error) {
	path := c.Path
	if path == "" {
		path = c.Args[0]
	}
	if filepath.Base(path) == path {
		lp, err := exec.LookPath(path)
		if err != nil {
			return "", commandError(c.name(), "", err)
		}
		return lp, nil
	}
	return path, nil
}

func (c *Cmd) argv() []string {
	if len(c.Args) == 0 {
		return []string{c.Path}
	}
	return c.Args
}

func (c *Cmd) env() []string {
	if c.Env == nil {
		return os.Environ()
	}
	return c.Env
}

// isOpen reports whether f has not been closed, without touching its
// descriptor's mode (as Fd would).
func isOpen(f *os.File) bool {
	rc, err := f.SyscallConn()
	return err == nil && rc.Control(func(uintptr) {}) == nil
}
