package netrunner

import (
	"fmt"
	"os"
	"sync"
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
// exits, so the runtime poller, not a blocked thread, waits for the exit.
type leader struct {
	pid   int
	pidfd *os.File
	tty   *foreground // the terminal lent to the child, if it was
}

// validatePlatform checks what only Linux has: cgroups.
func (c *Cmd) validatePlatform() error { return c.validateCgroup() }

func spawn(path string, argv, env []string, dir string, files []uintptr, pty bool, cg *cgroup, tty *foreground) (*leader, error) {
	pidfd := -1
	// Pdeathsig covers the child until the watchdog knows it: see
	// forkthread_linux.go.
	sys := &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd, Pdeathsig: syscall.SIGKILL}
	if tty != nil {
		// Its own group, made the terminal's foreground before the exec.
		sys.Foreground, sys.Ctty = true, tty.fd
	}
	if pty {
		// A terminal needs a session of its own; its leader leads the group too.
		sys.Setpgid, sys.Setsid, sys.Setctty, sys.Ctty = false, true, true, 0
	}
	if cg != nil {
		// clone3 with CLONE_INTO_CGROUP: the child is in the group before
		// it runs a single instruction, so nothing it forks escapes.
		sys.UseCgroupFD, sys.CgroupFD = true, cg.fd
	}
	attr := &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys}
	var pid int
	var err error
	onForkThread(func() {
		pid, _, err = syscall.StartProcess(path, argv, attr)
		if cg != nil && (err == syscall.ENOSYS || err == syscall.E2BIG || err == syscall.EINVAL) {
			// An older kernel: spawn, then move the child in.
			sys.UseCgroupFD = false
			if pid, _, err = syscall.StartProcess(path, argv, attr); err == nil {
				if err = cg.enter(pid); err != nil {
					unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
					err = fmt.Errorf("cgroup: %w", err)
				}
			}
		}
		if err == nil {
			// Not expected to fail on a fresh pidfd; without it the exit
			// can't be awaited on the poller, so the spawn is undone.
			if serr := unix.SetNonblock(pidfd, true); serr != nil {
				unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
				err = os.NewSyscallError("fcntl pidfd", serr)
			}
		}
		if err == nil {
			// At once, on this thread: Pdeathsig covers the child alone,
			// and what it forks before the watchdog hears of its group
			// (and cgroup) would outlive the program.
			watchdog.WatchGroup(pid)
			cg.watch(pid)
		}
	})
	if err != nil {
		if pidfd >= 0 {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
			unix.Close(pidfd)
		}
		forkReleased()
		return nil, err
	}
	return &leader{pid: pid, pidfd: os.NewFile(uintptr(pidfd), "pidfd"), tty: tty}, nil
}

// wait blocks until the leader has exited, then reaps it and calls exited
// with its status, all under mu, so that a group signal sent under mu never
// follows the reaping. Then a terminal lent to the child goes back.
func (l *leader) wait(mu *sync.Mutex, exited func(exitStatus, error)) {
	defer l.tty.handBack(l.pid)
	rc, err := l.pidfd.SyscallConn()
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		exited(exitStatus{}, err)
		return
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	err = rc.Read(func(uintptr) bool {
		mu.Lock()
		defer mu.Unlock()
		for {
			pid, err := syscall.Wait4(l.pid, &ws, syscall.WNOHANG, &ru)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil:
				exited(exitStatus{}, err)
				return true
			case pid == l.pid:
				exited(exitOf(ws, &ru), nil)
				return true
			}
			return false // still running: park until the pidfd is readable
		}
	})
	if err != nil {
		// The pidfd is ours alone and never closed before this returns;
		// an error here means the poller failed, so reap the hard way.
		_, werr := syscall.Wait4(l.pid, &ws, 0, &ru)
		mu.Lock()
		defer mu.Unlock()
		exited(exitOf(ws, &ru), werr)
	}
}

// signalGroup signals the leader's group, or the leader alone, through its
// pidfd, when it has left its group (setpgid, setsid).
func (l *leader) signalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-l.pid, sig)
	if err != syscall.ESRCH {
		return err
	}
	rc, err := l.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	return serr
}

func (l *leader) endLeftovers(grace time.Duration, killNow <-chan struct{}) {
	endGroup(l.pid, grace, killNow)
}

// release ends what spawn began, once the leader is reaped and its group
// is gone: the watchdog forgets the group, the pidfd closes, and the fork
// thread may go.
func (l *leader) release() {
	watchdog.ForgetGroup(l.pid)
	l.pidfd.Close()
	forkReleased()
}

func maxRSSBytes(ru *syscall.Rusage) int64 { return int64(ru.Maxrss) << 10 } // KiB on Linux; int32 on 32-bit
