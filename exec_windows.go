package netrunner

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/windows"

	"github.com/netrunner-go/netrunner/internal/winjob"
)

// Processes on Windows: each child runs in a job object of its own (see
// internal/winjob), which stands for its process group. Killing terminates
// the job, which ends the child and all its descendants; Stop asks first
// with CTRL_BREAK_EVENT to the child's console process group. The job kills
// what is in it when its last handle closes, and only this program holds
// that handle, so the program's death ends every child and descendant: no
// watchdog process is needed. exec_linux.go and exec_unix.go have the same
// functions.

// maxSignal is the highest signal number package syscall names on Windows.
const maxSignal = syscall.SIGTERM

func (c *Cmd) validatePlatform() error {
	switch {
	case c.PTY != nil:
		return commandError(c.name(), "PTY", ErrUnsupported)
	case c.Cgroup != "" || len(c.CgroupSettings) > 0:
		return commandError(c.name(), "Cgroup", ErrUnsupported)
	case c.PipeSize != 0:
		return commandError(c.name(), "PipeSize", ErrUnsupported)
	}
	return nil
}

// leader is the child we started and its job. Its exit is awaited by the
// stage's supervising goroutine blocked in WaitForSingleObject, one OS
// thread per running child, as os/exec has on Windows. The process handle,
// held until release, keeps the child's pid from being reused, so a
// CTRL_BREAK sent to its group cannot reach another program.
type leader struct {
	pid  int
	proc *winjob.Process

	// Set under the stage's mu while the child runs, read by wait's exited
	// under the same mu: how we ended it, to report as a signal.
	terminated, interrupted bool
}

func spawn(path string, argv, env []string, dir string, files []uintptr, _ bool, _ *cgroup, _ *foreground) (*leader, error) {
	p, err := winjob.Start(&winjob.Attr{
		Path:  resolve(path, dir),
		Args:  argv,
		Env:   env,
		Dir:   dir,
		Stdio: [3]windows.Handle{windows.Handle(files[0]), windows.Handle(files[1]), windows.Handle(files[2])},
	})
	if errors.Is(err, winjob.ErrNotFound) {
		return nil, syscall.ENOENT // start.go explains it
	}
	if err != nil {
		return nil, err
	}
	return &leader{pid: p.Pid, proc: p}, nil
}

// resolve finds the program at path as os/exec does on Windows, where
// CreateProcess would not: a relative path is taken from dir, as on Unix,
// where the child changes into dir before it executes the path, and a path
// without an extension gets the first of PATHEXT's that exists.
func resolve(path, dir string) string {
	if dir != "" && !filepath.IsAbs(path) && filepath.VolumeName(path) == "" && !os.IsPathSeparator(path[0]) {
		path = filepath.Join(dir, path)
	}
	if filepath.Ext(path) == "" {
		if lp, err := exec.LookPath(path); err == nil {
			return lp
		}
	}
	return path
}

// statusControlCExit is the exit code of a console program that CTRL_BREAK
// (or CTRL_C) ended through the default handler.
const statusControlCExit = 0xC000013A

// wait blocks until the child has exited and calls exited, under mu, with
// its exit code, CPU times and peak working set. A child that our
// termination ended is reported as killed by SIGKILL, one that our
// CTRL_BREAK ended as interrupted by SIGINT, like signals on Unix.
func (l *leader) wait(mu *sync.Mutex, exited func(exitStatus, error)) {
	err := l.proc.Wait()
	var e exitStatus
	var code uint32
	if err == nil {
		code, err = l.proc.ExitCode()
		e.code = int(code)
		// Not known on every system (Wine reports 0): left 0 then.
		e.user, e.system, _ = l.proc.Times()
		e.maxRSS, _ = l.proc.PeakWorkingSet()
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case err != nil:
	case l.terminated && code == winjob.ExitKilled:
		e.code, e.signal = -1, syscall.SIGKILL
	case l.interrupted && code == statusControlCExit:
		e.code, e.signal = -1, syscall.SIGINT
	}
	exited(e, err)
}

// signalGroup maps sig onto the job: SIGKILL terminates it; SIGINT and
// SIGTERM send CTRL_BREAK_EVENT to the child's console process group, and
// SIGTERM terminates the job instead when no console can carry the event
// (the program has none, or shares none with the child): Windows has no
// other way to ask. Signal 0 only checks; the rest have no Windows meaning.
func (l *leader) signalGroup(sig syscall.Signal) error {
	switch sig {
	case 0:
		return nil
	case syscall.SIGKILL:
		return l.terminate()
	case syscall.SIGINT, syscall.SIGTERM:
		err := l.proc.Break()
		if err != nil && sig == syscall.SIGTERM {
			return l.terminate()
		}
		l.interrupted = l.interrupted || err == nil
		return err
	}
	return ErrUnsupported
}

func (l *leader) terminate() error {
	if !l.proc.Exited() {
		l.terminated = true
	}
	return l.proc.Terminate()
}

// endLeftovers ends what is left in the job after the child exited: with
// grace, a CTRL_BREAK to its console group (the pid cannot be reused while
// its handle is held), then termination once grace passes, at once when
// killNow closes or no console carries the event; it returns when the job
// is empty.
func (l *leader) endLeftovers(grace time.Duration, killNow <-chan struct{}) {
	if n, err := l.proc.Active(); err == nil && n == 0 {
		return
	}
	// Without a console to carry the CTRL_BREAK there is no asking.
	if grace >= 0 && l.proc.Break() == nil {
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		pollJob(l.proc, deadline.C, killNow)
	}
	l.proc.Terminate()
	giveUp := time.NewTimer(killWait)
	defer giveUp.Stop()
	pollJob(l.proc, giveUp.C, nil)
}

// killWait bounds the wait for a terminated job to empty.
const killWait = 5 * time.Second

// pollJob returns once the job has no running process, or stop or hurry
// fires.
func pollJob(p *winjob.Process, stop <-chan time.Time, hurry <-chan struct{}) {
	pollUntil(func() bool { n, err := p.Active(); return err != nil || n == 0 }, stop, hurry)
}

// release closes the job and process handles; the job kills anything left.
func (l *leader) release() { l.proc.Close() }
