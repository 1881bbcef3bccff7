package netrunner

import (
	"errors"
	"fmt"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// WatchdogErr reports whether the children of this program are killed when
// it dies, even by SIGKILL. It returns nil while they are protected (or
// before any child was started), and otherwise why not: the watchdog could
// not be started or did not confirm it was ready, it died or stopped
// answering, it refused a registration, the platform or build mode has no
// watchdog (c-shared, c-archive, plugin: the executable is the host
// program), or the program opted out with DisableWatchdog or the
// netrunner_nowatchdog build tag, or it runs in secure-execution mode
// (setuid, setgid, file capabilities). On windows it is always nil: each
// child runs in a job object that only this program holds and that kills
// every process in it when the program dies, even by TerminateProcess, so
// no watchdog is needed (nor turned off by DisableWatchdog). On the other
// systems the error wraps ErrUnsupported.
//
// On Linux the first Start launches the watchdog, a copy of the program
// re-executed from /proc/self/exe (named "netrunner-watch" in ps -e) that
// holds a pipe from the program and kills every registered cgroup and
// process group when the pipe reads EOF. Start waits until it is ready (at
// most 5 s) before spawning the first child. The program makes a cgroup for
// its children, netrunner-<pid>-<pidns> below its own, which the watchdog watches
// from then on, and forks every child straight into it (or into its
// Cmd.Cgroup, registered first): a child and all it forks, even what leaves
// its process group or session, die with the program. A watchdog that died
// is replaced at the next Start (which registers what is live again); one
// that could not start is tried again at a later Start after a backoff,
// three times in a row at most.
//
// Without cgroup v2 write access to the program's own cgroup, or on Linux
// before 5.7, each child is forked with Pdeathsig instead, so it dies with
// the program even before the watchdog knows it, and its process group is
// registered as soon as it is forked, without waiting for the answer
// (WatchdogErr waits for the answers still due, up to 10 s if the watchdog
// stopped answering). Then what leaves the group, and what the child forks
// in the moment before its registration (microseconds, more on an
// overloaded machine), can outlive the program; WatchdogErr does not report
// that.
func WatchdogErr() error {
	err := watchdog.Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errors.ErrUnsupported):
		return fmt.Errorf("netrunner: %w: %w", ErrUnsupported, err)
	}
	return fmt.Errorf("netrunner: %w", err)
}

// DisableWatchdog turns the parent-death watchdog off, for programs that
// must not start an extra process: what a child started then outlives the
// program if it dies without stopping it (on Linux the kernel still kills
// each direct child, through Pdeathsig, but not its descendants or its
// cgroup), and WatchdogErr says so. Call it before the first Start; a
// watchdog already running is told to exit without killing anything. The
// netrunner_nowatchdog build tag does the same for a whole program. Nothing
// in the environment can turn the watchdog off. On windows, where job
// objects protect the children without a watchdog process, it changes
// nothing.
func DisableWatchdog() { watchdog.Disable() }
