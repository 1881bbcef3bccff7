//go:build unix && !linux

// Processes on the Unix systems other than Linux (darwin and the BSDs);
// exec_linux.go and exec_windows.go have the same functions.

package netrunner

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// maxSignal is the highest signal number on the BSDs and darwin.
const maxSignal = 31

// leader is the child we spawned, the leader of its own process group.
// Without pidfds the exit is awaited by a blocking wait4, and the reaping
// is marked just after it: a group signal racing the exit may, in that
// instant, find the number reused. Linux, where this is tested, has no
// such window.
type leader struct{ pid int }

func spawn(path string, argv, env []string, dir string, files []uintptr, pty bool, _ *cgroup, _ *foreground) (*leader, error) {
	sys := &syscall.SysProcAttr{Setpgid: true}
	if pty {
		sys.Setpgid, sys.Setsid, sys.Setctty, sys.Ctty = false, true, true, 0
	}
	pid, _, err := syscall.StartProcess(path, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files, Sys: sys})
	if err != nil {
		return nil, err
	}
	return &leader{pid: pid}, nil
}

func (l *leader) wait(mu *sync.Mutex, exited func(exitStatus, error)) {
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	var err error
	for {
		_, err = syscall.Wait4(l.pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	exited(exitOf(ws, &ru), err)
}

// signalGroup signals the leader's group, or the leader alone when it has
// left its group (setpgid, setsid).
func (l *leader) signalGroup(sig syscall.Signal) error {
	err := syscall.Kill(-l.pid, sig)
	if err == syscall.ESRCH {
		err = syscall.Kill(l.pid, sig)
	}
	return err
}

func (l *leader) endLeftovers(grace time.Duration, killNow <-chan struct{}) {
	endGroup(l.pid, grace, killNow)
}

func (l *leader) release() {}

// validatePlatform refuses what only Linux has.
func (c *Cmd) validatePlatform() error {
	if c.PipeSize != 0 {
		return commandError(c.name(), "PipeSize", ErrUnsupported)
	}
	if c.Cgroup != "" || len(c.CgroupSettings) > 0 {
		return commandError(c.name(), "Cgroup", ErrUnsupported)
	}
	return nil
}

// maxRSSBytes converts ru_maxrss, which darwin counts in bytes and the BSDs
// in KiB.
func maxRSSBytes(ru *syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10 // int32 on 32-bit systems
}
