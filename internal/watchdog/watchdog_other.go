//go:build !linux

package watchdog

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// Name is the watchdog's process name on Linux; there is none here.
const Name = "netrunner-watch"

var disabled atomic.Bool

var (
	errUnsupported = fmt.Errorf("the watchdog is Linux only: %w", errors.ErrUnsupported)
	errDisabled    = errors.New("the watchdog is disabled (DisableWatchdog or the netrunner_nowatchdog build tag)")
)

// Disable turns the watchdog off; here it only changes what Err says.
func Disable() { disabled.Store(true) }

// Err reports why children are not protected: there is no watchdog here.
// On Windows none is needed: every child runs in a job object that only
// this program holds and that kills its processes when the program dies,
// so children are protected even when the watchdog is disabled.
func Err() error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if builtDisabled || disabled.Load() {
		return errDisabled
	}
	return errUnsupported
}

// Pid returns the running watchdog's pid: always 0 here.
func Pid() int { return 0 }

// Ensure starts the watchdog on Linux; here it does nothing.
func Ensure() {}

// WatchGroup registers a process group (nothing to do here).
func WatchGroup(pgid int) {}

// ForgetGroup unregisters a process group (nothing to do here).
func ForgetGroup(pgid int) {}

// WatchCgroup registers a cgroup directory (nothing to do here).
func WatchCgroup(dir string, created int) bool { return false }

// ForgetCgroup unregisters a cgroup directory (nothing to do here).
func ForgetCgroup(dir string) {}
