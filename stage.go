package netrunner

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A child is one started program as its stage sees it: a local leader of
// its own process group (exec_linux.go, exec_unix.go), or whatever stands
// for one elsewhere.
type child interface {
	// wait blocks until the program has exited and calls exited, under mu,
	// once: a signal sent under mu then never follows the reaping.
	wait(mu *sync.Mutex, exited func(exitStatus, error))
	// signalGroup signals the program's whole group. It is called under
	// the stage's mu and never after exited.
	signalGroup(sig syscall.Signal) error
	// endLeftovers ends what is left of the group after the exit: TERM,
	// then KILL after grace, or KILL at once when killNow is closed. It
	// returns when nothing is left.
	endLeftovers(grace time.Duration, killNow <-chan struct{})
	// release frees what the start took, once the leftovers are gone.
	release()
}

// exitStatus is how a child ended.
type exitStatus struct {
	code         int            // -1 when a signal ended it
	signal       syscall.Signal // 0 unless a signal ended it
	user, system time.Duration  // CPU times, where known
	maxRSS       int64          // peak resident set in bytes, where known
}

// A terminal is the pseudo-terminal a child runs on.
type terminal interface {
	resize(ws Winsize) error
	// endInput tells the child its input is over, as closing a pipe would;
	// last is the last byte written (-1: none), done closes when the
	// stage is done.
	endInput(last int32, done <-chan struct{})
}

// A stage is one child of a Process and everything kept for it: its
// streams, its stdin, its stderr tail, its counters and how it ended.
type stage struct {
	process     *Process // told when the stage is done
	name        string   // how errors name it
	pid         int
	child       child
	cgroup      *cgroup // with Cmd.Cgroup
	terminal    terminal
	killTimeout time.Duration
	startedAt   time.Time

	stdout, stderr *Stream
	stdin          *stdin
	stderrTail     *tail
	tailPipe       lazyPipe        // the stderr tail's pipe, read once it has data
	tailFed        <-chan struct{} // a remote child's: see Stream.fed
	drainWait      *readableWait   // until the stderr tail's drainer starts
	drained        chan struct{}   // closed when the stderr tail is complete

	bytesIn, bytesOut, bytesErr, reads, writes atomic.Int64

	unwatch  func() bool // releases the Start context
	stopOnce sync.Once
	killOnce sync.Once
	killNow  chan struct{} // closed by kill: leftovers get SIGKILL without grace
	done     chan struct{}

	mu        sync.Mutex // guards the fields below
	reaped    bool       // once true, the group may be gone: no more signals
	groupGone bool       // nothing is left of the group: see processGone
	drainer   *Stream    // the stderr tail's, once stderr had data
	exitedAt  time.Time
	exit      exitStatus
	stopCause error // why we stopped the child: the context's error and cause
	waitErr   error
}

// stderrDrainChunk is the StderrTail drainer's read size: small, because
// stderr is usually quiet and every running process holds one.
const stderrDrainChunk = 8 << 10

// newStage takes over a spawned child and the parent's ends of its stdio,
// as stage i of p. The stage runs on its own from here, and tells p when it
// is done.
func newStage(ctx context.Context, c *Cmd, p *Process, i int, name string, pid int, ch child, s *stdio, cg *cgroup, term terminal) *stage {
	st := &stage{
		process:     p,
		name:        name,
		pid:         pid,
		child:       ch,
		cgroup:      cg,
		terminal:    term,
		killTimeout: c.killTimeout(),
		startedAt:   time.Now(),
		killNow:     make(chan struct{}),
		done:        make(chan struct{}),
	}
	st.stdin = newStdin(name, s.stdin, s.copy == nil, term, st.done, &st.bytesIn, &st.writes)
	size := c.chunkSize()
	if s.stdout != nil {
		st.stdout = newStream(ctx, name+": stdout", s.stdout, size, s.pty != nil, &st.bytesOut, &st.reads)
		st.stdout.canGrow = c.PipeSize == 0 && s.pty == nil
		st.stdout.fed = s.stdoutFed
	}
	switch {
	case s.stderr == nil && !s.tail.unwrapped:
	case c.Stderr == StderrStream:
		st.stderr = newStream(ctx, name+": stderr", s.stderr, size, false, &st.bytesErr, &st.reads)
		st.stderr.canGrow = c.PipeSize == 0
		st.stderr.fed = s.stderrFed
	case c.Stderr == StderrTail:
		st.stderrTail = &tail{n: stderrTailSize}
		st.tailPipe, st.tailFed = s.tail, s.stderrFed
		if s.stderr != nil {
			st.tailPipe = lazyPipe{file: s.stderr} // a remote child's
		}
	}
	st.drained = make(chan struct{})
	// No goroutine, and no Stream, until stderr has something: see
	// readable_linux.go.
	switch {
	case st.tailPipe.unwrapped:
		st.drainWait = onReadableFD(st.tailPipe.fd, st.drainStderr)
	case st.tailPipe.file != nil:
		st.drainWait = onReadable(st.tailPipe.file, st.drainStderr)
	default:
		close(st.drained)
	}
	if s.copy != nil {
		go st.stdin.copyFrom(s.copy)
	} else if s.eofNow {
		st.stdin.close(true)
	}
	st.unwatch = context.AfterFunc(ctx, func() {
		st.mu.Lock()
		// A child that has exited, reaped or not, was not stopped by ctx:
		// its exit status stands (leftovers in its group still get stopped).
		if !st.reaped && !exitedUnreaped(ch) {
			st.stopCause = contextError(ctx)
		}
		st.mu.Unlock()
		st.stop()
	})
	p.stages[i] = st // before supervise can end: see Process.stageDone
	if ef, ok := ch.(exitFiler); ok {
		// Supervised from its exit on: until then, no goroutine.
		onReadableFD(ef.exitFD(), func(onWaiter bool) {
			if onWaiter {
				go st.supervise()
			} else {
				st.supervise()
			}
		})
	} else {
		go st.supervise()
	}
	return st
}

// An exitFiler is a child with a descriptor that turns readable once it has
// exited (a pidfd), which one goroutine can wait for along with others'. It
// stays open until release.
type exitFiler interface {
	exitFD() int
}

// exitedUnreaped reports whether ch is known to have exited though its
// reaping may not have happened yet: its exit file is readable. Children
// without one are taken to be running.
func exitedUnreaped(ch child) bool {
	ef, ok := ch.(exitFiler)
	if !ok {
		return false
	}
	return pollReadable(ef.exitFD())
}

// supervise waits for the child, ends what is left of its group, and then
// marks the stage done.
func (st *stage) supervise() {
	var waitErr error
	st.child.wait(&st.mu, func(exit exitStatus, err error) {
		st.reaped, st.exitedAt, st.exit, waitErr = true, time.Now(), exit, err
	})

	st.child.endLeftovers(st.killTimeout, st.killNow)
	st.cgroup.end()
	st.child.release()
	st.stdin.close(false)
	// The group is gone: whatever the pipes still hold is all there is.
	// A drainer that starts after this learns it in drainStderr.
	st.mu.Lock()
	st.groupGone = true
	drainer := st.drainer
	st.mu.Unlock()
	for _, s := range []*Stream{st.stdout, st.stderr, drainer} {
		if s != nil {
			s.processGone()
		}
	}
	if st.drainWait.cancel() {
		st.drainStderr(false) // what the pipe holds now, without waiting
	}
	<-st.drained
	st.unwatch()

	st.mu.Lock()
	exit := st.exit
	switch {
	case waitErr != nil:
		st.waitErr = commandError(st.name, "wait", waitErr)
	case exit.code == 0 && exit.signal == 0 && st.stopCause == nil:
		if err := st.stdin.copyErr(); err != nil {
			st.waitErr = commandError(st.name, "reading Stdin", err)
		}
	default:
		e := &ExitError{Code: exit.code, Signal: exit.signal, name: st.name, cause: st.stopCause}
		if st.stderrTail != nil {
			e.Stderr = st.stderrTail.bytes()
		}
		st.waitErr = e
	}
	st.mu.Unlock()
	close(st.done)
	st.process.stageDone()
}

// drainStderr keeps the stderr tail until the end of stderr, past the
// Start context: the tail is for the ExitError. ended: stderr is at its
// end already, with nothing in it, and the pipe is only closed.
func (st *stage) drainStderr(ended bool) {
	defer close(st.drained)
	if ended {
		st.tailPipe.close()
		return
	}
	name := st.name + ": stderr"
	s := newStream(context.Background(), name, st.tailPipe.wrap("stderr"), stderrDrainChunk, false, &st.bytesErr, &st.reads)
	s.fed = st.tailFed
	st.mu.Lock()
	st.drainer = s
	gone := st.groupGone
	st.mu.Unlock()
	if gone {
		s.processGone()
	}
	if s.ended() == nil {
		s.writeTo(context.Background(), st.stderrTail)
	}
}

func (st *stage) result() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.waitErr
}

// signalGroup signals the group while the child is unreaped: the unreaped
// leader holds its pid, and so the group's id, so the signal cannot reach a
// group that reuses the number.
func (st *stage) signalGroup(sig syscall.Signal) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.reaped {
		return os.ErrProcessDone
	}
	return st.child.signalGroup(sig)
}

// stop sends TERM and CONT now and KILL after the grace, once.
func (st *stage) stop() {
	st.stopOnce.Do(func() {
		if st.killTimeout < 0 {
			st.kill()
			return
		}
		st.signalGroup(syscall.SIGTERM)
		// A stopped process (SIGSTOP, or SIGTTIN from a terminal) acts on
		// the TERM only once continued; without this it would wait out the
		// whole KillTimeout. Continuing one that runs does nothing.
		st.signalGroup(sigCONT)
		go func() {
			t := time.NewTimer(st.killTimeout)
			defer t.Stop()
			select {
			case <-st.done:
			case <-t.C:
				st.kill()
			}
		}()
	})
}

// kill sends SIGKILL to the group now and makes the leftovers get it too.
func (st *stage) kill() error {
	err := st.signalGroup(syscall.SIGKILL)
	st.killOnce.Do(func() { close(st.killNow) })
	if err == syscall.ESRCH {
		return nil // exited, not yet reaped
	}
	return err
}

func (st *stage) stats() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := Stats{
		BytesIn:   st.bytesIn.Load(),
		BytesOut:  st.bytesOut.Load(),
		BytesErr:  st.bytesErr.Load(),
		Reads:     st.reads.Load(),
		Writes:    st.writes.Load(),
		StartedAt: st.startedAt,
		ExitCode:  -1,
	}
	if !st.reaped {
		s.Duration = time.Since(st.startedAt)
		return s
	}
	s.Duration = st.exitedAt.Sub(st.startedAt)
	s.ExitCode = st.exit.code
	s.UserTime, s.SystemTime, s.MaxRSS = st.exit.user, st.exit.system, st.exit.maxRSS
	return s
}

// tail keeps the last n bytes written to it.
type tail struct {
	n   int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	if len(b) >= t.n {
		t.buf = append(t.buf[:0], b[len(b)-t.n:]...)
		return len(b), nil
	}
	// Let buf grow to twice the limit before shifting, so the copying
	// stays linear in the bytes written.
	if len(t.buf)+len(b) > 2*t.n {
		keep := t.n - len(b)
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keep:]...)
	}
	t.buf = append(t.buf, b...)
	return len(b), nil
}

func (t *tail) bytes() []byte {
	if len(t.buf) > t.n {
		return t.buf[len(t.buf)-t.n:]
	}
	return t.buf
}

// pollUntil returns once gone reports true, or stop or hurry fires: how
// endLeftovers waits for a group to empty. It looks again after 1 ms, then
// ever less often up to every 50 ms, since most leftovers end at once.
func pollUntil(gone func() bool, stop <-chan time.Time, hurry <-chan struct{}) {
	wait := time.Millisecond
	for !gone() {
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
