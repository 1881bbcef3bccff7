//go:build linux

package watchdog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	envVar   = "NETRUNNER_WATCHDOG" // switches a process into the watchdog when "1"
	envValue = "1"
	ctlFd    = 3 // the watchdog's read end of the control pipe
	replyFd  = 4 // the watchdog's write end of the reply pipe

	// Name is the watchdog's comm, as ps -e, top and pgrep show it.
	Name = "netrunner-watch"

	replyReady    = 'R'
	replyAccepted = 'y'
	replyRefused  = 'n'
)

var (
	// ReadyTimeout bounds how long Ensure waits for a new watchdog to
	// confirm it is ready (the program's package inits run first in it).
	ReadyTimeout = 5 * time.Second
	// ResponseTimeout bounds how long a registration waits for room in the
	// control pipe and for the reply before the watchdog is given up.
	ResponseTimeout = 10 * time.Second
	// firstRetry and maxRetry bound the backoff between attempts to start a
	// watchdog; after maxStarts failed starts in a row, there are no more.
	firstRetry, maxRetry = time.Second, time.Minute
	maxStarts            = 3
)

// state is the program's side of the watchdog.
var state struct {
	mu        sync.Mutex // serialises the pipe; guards the fields below
	disabled  bool
	permanent bool // err can never be cured (build mode, disabled)
	ctl       int  // write end of the control pipe; -1 without a working watchdog
	reply     int  // read end of the reply pipe
	pid       int  // the watchdog, 0 when none is running
	err       error
	retryAt   time.Time
	backoff   time.Duration
	failures  int // starts that failed in a row
	groups    map[int]*registration
	cgroups   map[string]*registration
	awaiting  []*registration // sent '+' lines not yet answered, oldest first

	childCgroup childCgroup
}

// A registration is a live group or cgroup the program wants watched, kept so
// that a replacement watchdog can be told about it.
type registration struct {
	count    int
	accepted bool   // by the current watchdog, once it answered
	created  int    // a cgroup's levels the program created
	what     string // for Err
}

func init() {
	state.ctl, state.reply = -1, -1
	state.childCgroup.kills = -1
	state.groups = map[int]*registration{}
	state.cgroups = map[string]*registration{}
	if builtDisabled {
		state.disabled, state.permanent, state.err = true, true, errDisabled
	}
}

var errDisabled = errors.New("the watchdog is disabled (DisableWatchdog or the netrunner_nowatchdog build tag): children are not killed when the program dies")

// Disable turns the watchdog off for the rest of the program's life. A
// running watchdog is told to exit without killing anything.
func Disable() {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.ctl >= 0 {
		writeLocked([]byte("x\n"))
		stopLocked(nil)
	}
	dropChildCgroupLocked()
	state.disabled, state.permanent, state.err = true, true, errDisabled
	clear(state.groups)
	clear(state.cgroups)
}

// Err reports why children are not protected: nil while they are (or before
// any watchdog was needed).
func Err() error {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.ctl >= 0 {
		hearLocked(true)
	}
	if state.err != nil {
		return state.err
	}
	for _, r := range state.groups {
		if !r.accepted {
			return fmt.Errorf("the watchdog refused %s: it is not killed when the program dies", r.what)
		}
	}
	for _, r := range state.cgroups {
		if !r.accepted {
			return fmt.Errorf("the watchdog refused %s: it is not killed when the program dies", r.what)
		}
	}
	return nil
}

// Pid returns the running watchdog's pid, or 0.
func Pid() int {
	state.mu.Lock()
	defer state.mu.Unlock()
	return state.pid
}

// Ensure makes sure a watchdog is running and ready, starting one if needed
// (and not refused for good, nor tried too recently). Call it before
// spawning a child; Err says why there is none.
func Ensure() {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.ctl >= 0 {
		hearLocked(false)
	}
	if state.disabled || state.permanent || state.ctl >= 0 || time.Now().Before(state.retryAt) {
		return
	}
	err := launchable()
	if err != nil && !errors.Is(err, errNoProc) {
		state.err, state.permanent = err, true
		return
	}
	if err == nil {
		err = startLocked()
	}
	if err != nil {
		// A program whose watchdog cannot start (its inits end or hold it
		// up) would otherwise pay up to ReadyTimeout in a Start each time.
		if state.failures++; state.failures >= maxStarts {
			err = fmt.Errorf("%w; gave up after %d attempts", err, state.failures)
			state.permanent = true
		}
		state.backoff = min(max(2*state.backoff, firstRetry), maxRetry)
		state.retryAt = time.Now().Add(state.backoff)
		state.err = err
		return
	}
	state.err, state.backoff, state.failures = nil, 0, 0
	makeChildCgroupLocked()
	// A replacement learns what its predecessor knew.
	for pgid, r := range state.groups {
		sendLocked(r, appendGroup(nil, '+', pgid))
	}
	for dir, r := range state.cgroups {
		sendLocked(r, appendCgroup(nil, r.created, dir))
	}
	// Children are forked into a cgroup only once this watchdog accepted it.
	hearLocked(true)
	dropRefusedChildCgroupLocked()
}

// WatchGroup registers process group pgid, led by a child of the program.
func WatchGroup(pgid int) {
	watch(state.groups, pgid, func() *registration {
		return &registration{what: "process group " + strconv.Itoa(pgid)}
	}, func() []byte { return appendGroup(nil, '+', pgid) })
}

// ForgetGroup unregisters process group pgid.
func ForgetGroup(pgid int) {
	forget(state.groups, pgid, func() []byte { return appendGroup(nil, '-', pgid) })
}

// WatchCgroup registers the cgroup v2 directory dir (absolute), of which the
// program created the innermost created levels, removed after a kill. Call
// it before forking a child into dir: it waits for the answer and reports
// whether the running watchdog accepted, so that a child forked into dir
// afterwards, and all it forks, die with the program.
func WatchCgroup(dir string, created int) bool {
	dir = filepath.Clean(dir)
	state.mu.Lock()
	defer state.mu.Unlock()
	r := watchLocked(state.cgroups, dir, func() *registration {
		return &registration{created: created, what: "cgroup " + dir}
	}, func() []byte { return appendCgroup(nil, created, dir) })
	if r == nil || state.ctl < 0 {
		return false
	}
	hearLocked(true)
	return state.ctl >= 0 && r.accepted
}

// ForgetCgroup unregisters the cgroup directory dir.
func ForgetCgroup(dir string) {
	dir = filepath.Clean(dir)
	forget(state.cgroups, dir, func() []byte {
		return append(strconv.AppendQuote([]byte("-c "), dir), '\n')
	})
}

func watch[K comparable](m map[K]*registration, k K, newReg func() *registration, msg func() []byte) {
	state.mu.Lock()
	defer state.mu.Unlock()
	watchLocked(m, k, newReg, msg)
}

// watchLocked counts one more user of registration k, sending it when it is
// the first; nil when the watchdog is disabled.
func watchLocked[K comparable](m map[K]*registration, k K, newReg func() *registration, msg func() []byte) *registration {
	if state.disabled {
		return nil
	}
	r := m[k]
	if r == nil {
		r = newReg()
		m[k] = r
	}
	if r.count++; r.count == 1 && state.ctl >= 0 {
		sendLocked(r, msg())
	}
	return r
}

func forget[K comparable](m map[K]*registration, k K, msg func() []byte) {
	state.mu.Lock()
	defer state.mu.Unlock()
	r := m[k]
	if r == nil {
		return
	}
	if r.count--; r.count > 0 {
		return
	}
	delete(m, k)
	if state.ctl >= 0 {
		writeLocked(msg())
	}
}

func appendGroup(b []byte, op byte, pgid int) []byte {
	b = append(b, op, 'g', ' ')
	return append(strconv.AppendInt(b, int64(pgid), 10), '\n')
}

func appendCgroup(b []byte, created int, dir string) []byte {
	b = append(b, "+c "...)
	b = strconv.AppendInt(b, int64(created), 10)
	b = append(b, ' ')
	return append(strconv.AppendQuote(b, dir), '\n')
}

// sendLocked writes a '+' line for r; its answer is heard later, in order
// (hearLocked). Not waiting for it keeps short the time in which a child
// runs unregistered: the line is in the pipe, and the watchdog reads every
// line the program wrote before it reads the EOF of its death. (A line
// read after the program died is checked against the reaper that took both
// the child and the watchdog; see table.addGroup.)
func sendLocked(r *registration, msg []byte) {
	r.accepted = false
	if writeLocked(msg) {
		state.awaiting = append(state.awaiting, r)
	}
}

// hearLocked reads the watchdog's answers, in the order of the lines they
// answer: those that have come, or with wait all that are awaited (bounded by
// ResponseTimeout). It also notices a watchdog that died: its end of the
// reply pipe is closed.
func hearLocked(wait bool) {
	deadline := time.Now().Add(ResponseTimeout)
	var buf [256]byte
	for {
		n, err := unix.Read(state.reply, buf[:])
		switch {
		case n > 0:
			for _, b := range buf[:n] {
				if len(state.awaiting) == 0 {
					failLocked(fmt.Errorf("it said %q unasked", b))
					return
				}
				state.awaiting[0].accepted = b == replyAccepted
				state.awaiting = state.awaiting[1:]
			}
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if !wait || len(state.awaiting) == 0 {
				return
			}
			if !pollLocked(state.reply, unix.POLLIN, deadline) {
				failLocked(fmt.Errorf("no answer for %v", ResponseTimeout))
				return
			}
		case err == nil:
			failLocked(errReplyClosed)
			return
		default:
			failLocked(os.NewSyscallError("read", err))
			return
		}
	}
}

// writeLocked writes one line. The pipe holds thousands of lines and the
// watchdog drains it at once; one that does not (stopped, stuck) is given up
// after ResponseTimeout rather than hang the program or drop a line (a
// dropped forget could make it kill a reused pgid later).
func writeLocked(msg []byte) bool {
	deadline := time.Now().Add(ResponseTimeout)
	for len(msg) > 0 {
		n, err := unix.Write(state.ctl, msg)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if !pollLocked(state.ctl, unix.POLLOUT, deadline) {
				failLocked(fmt.Errorf("unresponsive for %v", ResponseTimeout))
				return false
			}
			continue
		case err == nil && n <= 0:
			err = unix.EIO // cannot happen on a pipe; don't spin on it
		}
		if err != nil {
			failLocked(os.NewSyscallError("write", err)) // EPIPE: it is gone
			return false
		}
		msg = msg[n:]
	}
	return true
}

// readReplyLocked reads one reply byte, waiting up to timeout.
func readReplyLocked(timeout time.Duration) (byte, error) {
	deadline := time.Now().Add(timeout)
	var b [1]byte
	for {
		n, err := unix.Read(state.reply, b[:])
		switch {
		case n == 1:
			return b[0], nil
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			if !pollLocked(state.reply, unix.POLLIN, deadline) {
				return 0, fmt.Errorf("no answer for %v", timeout)
			}
		case err == nil:
			return 0, errReplyClosed
		default:
			return 0, os.NewSyscallError("read", err)
		}
	}
}

// errReplyClosed: the watchdog closed its end of the reply pipe, as it does
// when it exits.
var errReplyClosed = errors.New("it closed its reply pipe")

// pollLocked waits until fd is ready for events, or deadline has passed.
func pollLocked(fd int, events int16, deadline time.Time) bool {
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(fds, int(min(wait, time.Second)/time.Millisecond)+1)
		if err == nil && n > 0 {
			return true
		}
	}
}

// failLocked gives the running watchdog up: it is killed and reaped, and Err
// says why (with its exit status if it died on its own). The next Ensure
// starts a fresh one.
func failLocked(cause error) {
	pid := state.pid
	status := stopLocked(cause)
	releaseChildCgroupLocked()
	state.err = fmt.Errorf("the watchdog (pid %d) failed: %w%s; children are not killed when the program dies", pid, cause, status)
	// It worked until now (someone killed it, say): the next Ensure
	// replaces it at once.
	state.backoff, state.retryAt = 0, time.Time{}
	for _, r := range state.groups {
		r.accepted = false
	}
	for _, r := range state.cgroups {
		r.accepted = false
	}
	state.awaiting = nil
}
