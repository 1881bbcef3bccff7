package netrunner

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// maxSignal is the highest signal number the kernel knows (_NSIG - 1).
const maxSignal = 64

// leader is the child we spawned, the leader of its own process group. On
// Linux it is held by a pidfd: signals sent through it cannot reach another
// process that reuses the pid, and the pidfd turns readable when the child
// exits, which the package's one waiter (readable_linux.go) watches for
// every child, so no thread or goroutine waits for the exit.
type leader struct {
	pid     int
	pidfd   int
	tty     *foreground // the terminal lent to the child, if it was
	thread  *forkThread // the thread that forked it, if one did; kept until it is reaped
	watched bool        // its group is registered with the watchdog
}

// validatePlatform checks what only Linux has: cgroups.
func (c *Cmd) validatePlatform() error { return c.validateCgroup() }

// spawn starts the child. Where it can, it forks the child into a cgroup the
// watchdog watches already: the children's cgroup (see
// internal/watchdog/childcgroup_linux.go), or the Cmd's Cgroup, registered
// first. Then the child, and all it forks, die with the program from its
// first instruction, and the fork runs here, as os/exec's does. Otherwise it
// takes the slower way of spawnOnForkThread.
func spawn(path string, argv, env []string, dir string, files []uintptr, pty bool, cg *cgroup, tty *foreground) (*leader, error) {
	pidfd := -1
	sys := &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd}
	if tty != nil {
		// Its own group, made the terminal's foreground before the exec.
		sys.Foreground, sys.Ctty = true, tty.fd
	}
	if pty {
		// A terminal needs a session of its own; its leader leads the group too.
		sys.Setpgid, sys.Setsid, sys.Setctty, sys.Ctty = false, true, true, 0
	}
	attr := &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys}
	cgWatched := cg.watch()
	cgForkInto := cg != nil && canCloneIntoCgroup() && cg.forkable()
	// A second try takes the children's cgroup made after the first was
	// refused.
	for try := 0; try < 2 && canCloneIntoCgroup(); try++ {
		var children *watchdog.ChildCgroupRef
		switch {
		case cg == nil:
			if children = watchdog.ChildCgroup(); children != nil {
				sys.UseCgroupFD, sys.CgroupFD = true, children.FD()
			}
		case cgWatched && cgForkInto:
			sys.UseCgroupFD, sys.CgroupFD = true, cg.fd
		}
		if !sys.UseCgroupFD {
			break
		}
		pid, _, err := syscall.StartProcess(path, argv, attr)
		sys.UseCgroupFD = false
		// Whose fault a failure is: a probe fork into the cgroup tells.
		cgroupFault := err != nil && err != syscall.ENOSYS && !watchdog.ForkIntoWorks(sys.CgroupFD)
		if children != nil {
			if cgroupFault {
				// Removed, made threaded or given controllers, or the
				// program moved or gave up the credentials to write it.
				children.Refused()
			}
			children.Done()
		}
		switch {
		case err == nil:
			return &leader{pid: pid, pidfd: pidfd, tty: tty}, nil
		case err == syscall.ENOSYS:
			// The kernel has clone3, so a seccomp filter refuses it, as
			// older container runtimes set up: fork with clone from now on.
			clone3Refused.Store(true)
		case !cgroupFault:
			return nil, err
		case cg != nil:
			cgForkInto = false // moved in after its fork instead
			try++
		}
	}
	return spawnOnForkThread(path, argv, attr, cg, cgForkInto, tty)
}

// clone3Refused records that clone3 failed with ENOSYS on a kernel that has it.
var clone3Refused atomic.Bool

func canCloneIntoCgroup() bool { return watchdog.CloneIntoCgroup() && !clone3Refused.Load() }

// spawnOnForkThread forks the child with Pdeathsig on a fork thread, which
// keeps the signal for the program's death, and registers its group with the
// watchdog at once, on that thread (see forkthread_linux.go). What the child
// forks between its exec and that line can outlive the program.
func spawnOnForkThread(path string, argv []string, attr *syscall.ProcAttr, cg *cgroup, cgForkInto bool, tty *foreground) (*leader, error) {
	sys := attr.Sys
	sys.Pdeathsig = syscall.SIGKILL
	if cgForkInto && canCloneIntoCgroup() {
		// clone3 with CLONE_INTO_CGROUP: the child is in the group before
		// it runs a single instruction, so nothing it forks escapes.
		sys.UseCgroupFD, sys.CgroupFD = true, cg.fd
	}
	var pid int
	var err error
	thread := onForkThread(func() {
		pid, _, err = syscall.StartProcess(path, argv, attr)
		if err == syscall.ENOSYS && sys.UseCgroupFD {
			clone3Refused.Store(true)
			sys.UseCgroupFD = false
			pid, _, err = syscall.StartProcess(path, argv, attr)
		}
		if err == nil && cg != nil && !sys.UseCgroupFD {
			// The child is moved in after its fork: it runs briefly outside.
			if err = cg.enter(pid); err != nil {
				undoStart(pid, *sys.PidFD)
				err = fmt.Errorf("cgroup: %w", err)
			}
		}
		if err == nil {
			watchdog.WatchGroup(pid)
		}
	})
	if err != nil {
		thread.released()
		return nil, err
	}
	return &leader{pid: pid, pidfd: *sys.PidFD, tty: tty, thread: thread, watched: true}, nil
}

// undoStart kills and reaps a child just started, and closes its pidfd.
func undoStart(pid, pidfd int) {
	unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
	unix.Close(pidfd)
}

// wait blocks until the leader has exited, then reaps it and calls exited
// with its status, all under mu, so that a group signal sent under mu never
// follows the reaping. Then a terminal lent to the child goes back. The
// stage calls it once the pidfd is readable, so it does not block then.
func (l *leader) wait(mu *sync.Mutex, exited func(exitStatus, error)) {
	defer l.tty.handBack(l.pid)
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		mu.Lock()
		pid, err := syscall.Wait4(l.pid, &ws, syscall.WNOHANG, &ru)
		switch {
		case err == syscall.EINTR:
		case err != nil:
			exited(exitStatus{}, err)
		case pid == l.pid:
			exited(exitOf(ws, &ru), nil)
		}
		mu.Unlock()
		if err != syscall.EINTR && (err != nil || pid == l.pid) {
			return
		}
		if err == nil {
			// Still running: block this thread until the pidfd turns readable.
			fds := []unix.PollFd{{Fd: int32(l.pidfd), Events: unix.POLLIN}}
			unix.Poll(fds, -1)
		}
	}
}

// exitFD is the leader's pidfd, readable once it has exited.
func (l *leader) exitFD() int { return l.pidfd }

// signalGroup signals the leader's group, or the leader alone, through its
// pidfd, when it has left its group (setpgid, setsid).
func (l *leader) signalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-l.pid, sig)
	if err != syscall.ESRCH {
		return err
	}
	// The pidfd closes only in release, after the reaping: see child.
	return unix.PidfdSendSignal(l.pidfd, sig, nil, 0)
}

func (l *leader) endLeftovers(grace time.Duration, killNow <-chan struct{}) {
	endGroup(l.pid, grace, killNow)
}

// release ends what spawn began, once the leader is reaped and its group
// is gone: the watchdog forgets the group, the pidfd closes, and the fork
// thread may go.
func (l *leader) release() {
	if l.watched {
		watchdog.ForgetGroup(l.pid)
	}
	unix.Close(l.pidfd)
	if l.thread != nil {
		l.thread.released()
	}
}

func maxRSSBytes(ru *syscall.Rusage) int64 { return int64(ru.Maxrss) << 10 } // KiB on Linux; int32 on 32-bit
