package netrunner

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Starting processes on Windows is not implemented yet: it needs job objects
// for process groups and overlapped named pipes for the poller (see the
// package documentation). Until then validatePlatform refuses every Cmd
// before anything is opened, and the rest of this file only gives the
// platform-neutral files the names they call; each of them refuses too.

// maxSignal is the highest signal number package syscall names on Windows.
const maxSignal = syscall.SIGTERM

// errNoWindowsStart is why nothing starts on Windows yet.
var errNoWindowsStart = fmt.Errorf("starting processes on windows: %w", ErrUnsupported)

func (c *Cmd) validatePlatform() error {
	return commandError(c.name(), "", errNoWindowsStart)
}

type leader struct{ pid int }

func spawn(string, []string, []string, string, []uintptr, bool, *cgroup, *foreground) (*leader, error) {
	return nil, errNoWindowsStart
}

func (l *leader) wait(mu *sync.Mutex, exited func(exitStatus, error)) {
	mu.Lock()
	defer mu.Unlock()
	exited(exitStatus{}, errNoWindowsStart)
}

func (l *leader) signalGroup(syscall.Signal) error { return errNoWindowsStart }

func (l *leader) endLeftovers(time.Duration, <-chan struct{}) {}

func (l *leader) release() {}

func maxRSSBytes(*syscall.Rusage) int64 { return 0 }
