package netrunner

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/windows"

	"github.com/netrunner-go/netrunner/internal/winjob"
)

// Processes on Windows: each child runs in a job object of its own (see
// internal/winjob), the counterpart of its process group there. Killing
// terminates the job, which ends the child and all its descendants; Stop
// asks first with CTRL_BREAK_EVENT to the child's console process group.
// The job kills what is in it when its last handle closes, and only this
// program holds that handle, so the program's death ends every child and
// descendant: no watchdog process is needed.

// maxSignal is the highest signal number package syscall names on Windows.
const maxSignal = syscall.SIGTERM

func (c *Cmd) validatePlatform() error {
	switch {
	case c.PTY != nil:
		return fmt.Errorf("netrunner: %q: PTY: %w", c.name(), ErrUnsupported)
	case c.Cgroup != "" || len(c.CgroupSettings) > 0:
		return fmt.Errorf("netrunner: %q: Cgroup: %w", c.name(), ErrUnsupported)
	case c.PipeSize != 0:
		return fmt.Errorf("netrunner: %q: PipeSize: %w", c.name(), ErrUnsupported)
	}
	return nil
}

// leader is the child we started and its job. Its exit is awaited by a
// goroutine blocked in WaitForSingleObject, one OS thread per running
// child, as os/exec does on Windows. The process handle, held until
// release, keeps the child's pid from being reused, so a CTRL_BREAK sent to
// it cannot reach another program.
type leader struct {
	pid  int
	proc *winjob.Process

	exited     bool        // set under the stage's mu once wait saw the exit
	terminated atomic.Bool // the job was terminated while the child ran
}

func spawn(path string, argv, env []string, dir string, files []uintptr, _ bool, _ *cgroup, _ *foreground) (*leader, error) {
	p, err := winjob.Start(&winjob.Attr{
		Path:  path,
		Args:  argv,
		Env:   env,
		Dir:   dir,
		Stdio: [3]windows.Handle{windows.Handle(files[0]), windows.Handle(files[1]), windows.Handle(files[2])},
	})
	if errors.Is(err, winjob.ErrNotFound) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, err
	}
	l := &leader{pid: p.Pid, proc: p}
	jobs.Store(l.pid, l)
	return l, nil
}

// wait blocks until the child has exited and calls reaped with its exit
// code and CPU times, under mu.
func (l *leader) wait(mu *sync.Mutex, reaped func(syscall.WaitStatus, *syscall.Rusage, error)) {
	err := l.proc.Wait()
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	if err == nil {
		ws.ExitCode, err = l.proc.ExitCode()
	}
	if err == nil {
		user, system, terr := l.proc.Times()
		if terr == nil {
			ru.UserTime, ru.KernelTime = syscall.NsecToFiletime(user.Nanoseconds()), syscall.NsecToFiletime(system.Nanoseconds())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	l.exited = true
	reaped(ws, &ru, err)
}

// signal maps sig onto the job: SIGKILL terminates it; SIGTERM and SIGINT
// send CTRL_BREAK_EVENT to the child's console process group (SIGTERM
// terminates the job instead when no console can carry it: there is no
// other way to ask); 0 only checks. Other signals have no Windows meaning.
func (l *leader) signal(sig syscall.Signal) error {
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
		return err
	}
	return ErrUnsupported
}

func (l *leader) terminate() error {
	if !l.proc.Exited() {
		l.terminated.Store(true)
	}
	return l.proc.Terminate()
}

// release closes the job and process handles; the job kills anything left.
func (l *leader) release() {
	jobs.Delete(l.pid)
	l.proc.Close()
}

// killGroup finds no group by number on Windows: Process.signalGroup then
// signals through the leader, which holds the job.
func killGroup(int, syscall.Signal) error { return syscall.ESRCH }

// endLeftovers ends what is left in the job after the child exited: with
// grace, CTRL_BREAK to its console group (the pid is not reused while
// the handle is held), then termination once grace passes or kill closes.
func (l *leader) endLeftovers(grace time.Duration, kill <-chan struct{}) {
	if n, err := l.proc.Active(); err == nil && n == 0 {
		return
	}
	if grace >= 0 {
		l.proc.Break()
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		pollJob(l.proc, deadline.C, kill)
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
	wait := time.Millisecond
	for {
		if n, err := p.Active(); err != nil || n == 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-hurry:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// jobs finds a leader by pid for endLeftovers, which the platform-neutral
// code calls by the group's number.
var jobs sync.Map // pid -> *leader

func endLeftovers(pid int, grace time.Duration, kill <-chan struct{}) {
	if l, ok := jobs.Load(pid); ok {
		l.(*leader).endLeftovers(grace, kill)
	}
}

// maxRSSBytes: the peak working set is not in syscall.Rusage on Windows.
func maxRSSBytes(*syscall.Rusage) int64 { return 0 }
