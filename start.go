package netrunner

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// Start starts the command and returns at once. The context governs the
// process's life: when it ends, the process group gets SIGTERM, then SIGKILL
// after KillTimeout, and the process is reaped. Use Process.Wait or
// Process.Done to learn when it is over.
//
// Input is checked before anything is spawned: see ErrInvalidCommand. A
// missing program wraps exec.ErrNotFound. Every error names the command.
func (c *Cmd) Start(ctx context.Context) (*Process, error) {
	return c.start(ctx, wiring{stdin: -1, stdout: -1})
}

// wiring says how start connects a child beyond what its Cmd says.
type wiring struct {
	oneShot bool   // a nil Stdin is empty, not a pipe for Write: Run, Output, Chunks, Lines
	stdin   int    // >= 0: the child's stdin, e.g. the pipe from a previous pipeline stage
	stdout  int    // >= 0: the child's stdout, e.g. the pipe to the next stage
	name    string // how errors name the process, if not by its command
}

var oneShot = wiring{oneShot: true, stdin: -1, stdout: -1}

func (c *Cmd) start(ctx context.Context, w wiring) (*Process, error) {
	if w.name == "" {
		w.name = c.name() // once: a long argv costs something to show
	}
	p := newProcess(w.name, 1)
	if err := c.startStage(ctx, p, 0, w); err != nil {
		return nil, err
	}
	return p.started(), nil
}

// startStage checks the Cmd, spawns its child and makes it stage i of p.
func (c *Cmd) startStage(ctx context.Context, p *Process, i int, w wiring) error {
	if ctx == nil {
		return invalidf(c.name(), "nil context")
	}
	if err := c.validate(); err != nil {
		return err
	}
	if err := c.checkHost(w); err != nil {
		return err
	}
	if !atomic.CompareAndSwapInt32(&c.started, 0, 1) {
		return commandErrorf(c.name(), "already started; a Cmd runs once")
	}
	if ctx.Err() != nil {
		return commandError(c.name(), "not started", contextError(ctx))
	}
	if c.Host != nil {
		return c.startRemoteStage(ctx, p, i, w)
	}
	path, err := c.lookPath()
	if err != nil {
		return err
	}
	if c.Dir != "" {
		if fi, err := os.Stat(c.Dir); err != nil {
			return commandError(c.name(), "Dir", err)
		} else if !fi.IsDir() {
			return commandErrorf(c.name(), "Dir %q is not a directory", c.Dir)
		}
	}
	cg, err := c.openCgroup()
	if err != nil {
		return commandError(c.name(), "", err)
	}
	s, err := c.newStdio(w)
	if err != nil {
		cg.end()
		return commandError(c.name(), "", err)
	}
	tty, err := lendForeground(c.name, s.userFile)
	if err != nil {
		s.closeChildEnds()
		s.closeParentEnds()
		cg.end()
		return err
	}
	// The watchdog is up before the first child is, and ready.
	watchdog.Ensure()
	l, err := spawn(path, c.argv(), c.env(), c.Dir, s.childFiles(), c.PTY != nil, cg, tty)
	s.closeChildEnds()
	if err != nil {
		tty.handBack(0)
		s.closeParentEnds()
		cg.end()
		if err == syscall.ENOENT {
			// Dir was checked above: the program (or its interpreter) is missing.
			return notFound(c.name(), path, c.Dir)
		}
		return commandError(c.name(), "start", err)
	}
	name := w.name
	if name == "" {
		name = c.name()
	}
	newStage(ctx, c, p, i, name, l.pid, l, s, cg, newTerminal(s.pty, l.pid))
	return nil
}
