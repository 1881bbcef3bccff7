package netrunner

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Process is a started command. Its methods are safe for concurrent use.
type Process struct {
	Stdout *Stream // stdout (and stderr with StderrToStdout; the terminal with PTY)
	Stderr *Stream // non-nil only with StderrStream

	name        string
	pid         int
	leader      *leader
	stages      []*Process // a pipeline's stages; see pipeline.go
	cgroup      *cgroup    // with Cmd.Cgroup
	killTimeout time.Duration
	startedAt   time.Time

	pty        *os.File // the terminal master, with Cmd.PTY
	stdin      *os.File // nil when the child's stdin is not a pipe of ours
	stdinOwned bool     // the caller writes stdin (not a copy of Cmd.Stdin)
	stdinSem   chan struct{}
	stdinWatch *ctxWatch
	stdinShut  sync.Once
	stdinDone  atomic.Bool
	lastIn     atomic.Int32 // the last byte written to stdin; -1: none yet

	stderrTail *tail
	drainWait  *readableWait // until the stderr tail's drainer starts
	drained    chan struct{} // closed when the stderr tail is complete

	bytesIn, bytesOut, bytesErr, reads, writes atomic.Int64

	unwatch  func() bool // releases the Start context
	stopOnce sync.Once
	killOnce sync.Once
	killNow  chan struct{} // closed by Kill: leftovers get SIGKILL without grace
	done     chan struct{}

	mu        sync.Mutex // guards the fields below
	reaped    bool       // once true, the group may be gone: no more kill(-pgid)
	exitedAt  time.Time
	status    syscall.WaitStatus
	rusage    syscall.Rusage
	stopCause error // the context error that made us stop the process
	copyErr   error // reading Cmd.Stdin failed
	waitErr   error
}

// stderrDrainChunk is the StderrTail drainer's read size: small, because
// stderr is usually quiet and every running process holds one.
const stderrDrainChunk = 8 << 10

func newProcess(ctx context.Context, c *Cmd, name string, l *leader, s *stdio, cg *cgroup) *Process {
	p := &Process{
		name:        name,
		pid:         l.pid,
		leader:      l,
		cgroup:      cg,
		killTimeout: c.killTimeout(),
		startedAt:   time.Now(),
		pty:         s.pty,
		stdin:       s.stdin,
		stdinOwned:  s.stdin != nil && s.copy == nil,
		stdinSem:    make(chan struct{}, 1),
		killNow:     make(chan struct{}),
		done:        make(chan struct{}),
	}
	if p.stdin != nil {
		p.stdinWatch = newCtxWatch(p.stdin, true, nil)
	}
	// Registered at once: the watchdog is ready (start called Ensure), and a
	// refusal shows in WatchdogErr.
	cg.watch(p.pid) // the group was registered by spawn, as soon as it existed
	size := c.chunkSize()
	if s.stdout != nil {
		p.Stdout = newStream(ctx, fmt.Sprintf("%q stdout", p.name), s.stdout, size, s.pty != nil, &p.bytesOut, &p.reads)
		p.Stdout.canGrow = c.PipeSize == 0 && s.pty == nil
	}
	var drainer *Stream
	switch {
	case s.stderr == nil:
	case c.Stderr == StderrStream:
		p.Stderr = newStream(ctx, fmt.Sprintf("%q stderr", p.name), s.stderr, size, false, &p.bytesErr, &p.reads)
		p.Stderr.canGrow = c.PipeSize == 0
	case c.Stderr == StderrTail:
		drainer = newStream(ctx, fmt.Sprintf("%q stderr", p.name), s.stderr, stderrDrainChunk, false, &p.bytesErr, &p.reads)
		p.stderrTail = &tail{n: stderrTailSize}
	}
	p.drained = make(chan struct{})
	if drainer != nil {
		// No goroutine until stderr has something: see lazydrain_linux.go.
		p.drainWait = onReadable(s.stderr, func(ended bool) { p.drainStderr(drainer, ended) })
	} else {
		close(p.drained)
	}
	p.lastIn.Store(-1)
	if s.copy != nil {
		go p.copyStdin(s.copy)
	} else if s.eofNow {
		p.closeStdin(true)
	}
	p.watch(ctx)
	go p.supervise(drainer)
	return p
}

// drainStderr keeps the stderr tail until the end of stderr, past the
// Start context: the tail is for the ExitError. ended: stderr is at its
// end already, with nothing in it.
func (p *Process) drainStderr(s *Stream, ended bool) {
	defer close(p.drained)
	if ended {
		s.setEnd(io.EOF)
	} else if s.ended() == nil {
		s.writeTo(context.Background(), p.stderrTail)
	}
}

// watch ties the process to ctx: when ctx ends first, the process is stopped.
func (p *Process) watch(ctx context.Context) {
	p.unwatch = context.AfterFunc(ctx, func() {
		p.mu.Lock()
		if !p.reaped {
			p.stopCause = ctx.Err()
		}
		p.mu.Unlock()
		p.Stop(context.Background())
	})
}

// supervise waits for the leader, reaps it, ends what is left of its group,
// and then marks the process done.
func (p *Process) supervise(drainer *Stream) {
	var waitErr error
	p.leader.wait(&p.mu, func(status syscall.WaitStatus, rusage *syscall.Rusage, err error) {
		p.reaped, p.exitedAt, p.status, waitErr = true, time.Now(), status, err
		if rusage != nil {
			p.rusage = *rusage
		}
	})

	endLeftovers(p.pid, p.killTimeout, p.killNow)
	p.cgroup.end()
	p.leader.release()
	p.closeStdin(false)
	// The group is gone: whatever the pipes still hold is all there is.
	for _, s := range []*Stream{p.Stdout, p.Stderr, drainer} {
		if s != nil {
			s.processGone()
		}
	}
	if p.drainWait.cancel() {
		p.drainStderr(drainer, false) // what the pipe holds now, without waiting
	}
	<-p.drained
	p.unwatch()

	p.mu.Lock()
	status := p.status
	switch {
	case waitErr != nil:
		p.waitErr = fmt.Errorf("netrunner: %q: wait: %w", p.name, waitErr)
	case status.Exited() && status.ExitStatus() == 0 && p.stopCause == nil:
		if p.copyErr != nil {
			p.waitErr = fmt.Errorf("netrunner: %q: reading Stdin: %w", p.name, p.copyErr)
		}
	default:
		e := &ExitError{Code: status.ExitStatus(), name: p.name, cause: p.stopCause}
		if status.Signaled() {
			e.Code, e.Signal = -1, status.Signal()
		}
		if p.stderrTail != nil {
			e.Stderr = p.stderrTail.bytes()
		}
		p.waitErr = e
	}
	p.mu.Unlock()
	close(p.done)
}

// Pid returns the process id of the child, which is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Done returns a channel closed once the process has exited, been reaped,
// and nothing is left of its process group.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the process is done and returns nil if it exited with
// status 0, otherwise an *ExitError (which also matches the context error
// if the Start context ended the process). ctx only bounds the waiting: when
// it ends first, Wait returns its error and the process runs on. Wait may be
// called any number of times, from many goroutines.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.result()
	case <-ctx.Done():
		select {
		case <-p.done:
			return p.result()
		default:
		}
		return fmt.Errorf("netrunner: %q: wait: %w", p.name, ctx.Err())
	}
}

func (p *Process) result() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// ExitCode returns the exit code of the exited process, or -1 while it is
// running or when a signal ended it.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped || !p.status.Exited() {
		return -1
	}
	return p.status.ExitStatus()
}

// Signal sends sig to the process group of the child. Once the child has
// been reaped it returns an error wrapping os.ErrProcessDone. Signal 0 only
// checks that the group can be signalled.
func (p *Process) Signal(sig syscall.Signal) error {
	if sig < 0 || sig > maxSignal {
		return fmt.Errorf("netrunner: %q: signal %d is outside 0..%d", p.name, int(sig), maxSignal)
	}
	if err := p.signalGroup(sig); err != nil {
		return fmt.Errorf("netrunner: %q: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// signalGroup signals the group while the leader is unreaped: the unreaped
// leader holds its pid, and so the group's id, so the signal cannot reach a
// group that reuses the number.
func (p *Process) signalGroup(sig syscall.Signal) error {
	if p.stages != nil {
		return p.signalStages(func(s *Process) error { return s.signalGroup(sig) })
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	err := killGroup(p.pid, sig)
	if err == syscall.ESRCH {
		// The leader left its group (setpgid, setsid); it still exists.
		err = p.leader.signal(sig)
	}
	return err
}

// Stop stops the process gracefully: SIGTERM to its group, followed by
// SIGCONT so that a stopped member can act on it, then SIGKILL after
// KillTimeout (at once if KillTimeout < 0), and waits until it is
// reaped. It returns what Wait returns; ctx bounds the waiting only, the
// SIGKILL comes on time either way. Stop is idempotent and safe to call
// after the process exited.
func (p *Process) Stop(ctx context.Context) error {
	if p.stages != nil {
		for _, s := range p.stages {
			go s.Stop(context.Background())
		}
		return p.Wait(ctx)
	}
	p.stopOnce.Do(func() {
		if p.killTimeout < 0 {
			p.Kill()
			return
		}
		p.signalGroup(syscall.SIGTERM)
		// A stopped process (SIGSTOP, or SIGTTIN from a terminal) acts on
		// the TERM only once continued; without this it would wait out the
		// whole KillTimeout. Continuing one that runs does nothing.
		p.signalGroup(sigCONT)
		go func() {
			t := time.NewTimer(p.killTimeout)
			defer t.Stop()
			select {
			case <-p.done:
			case <-t.C:
				p.Kill()
			}
		}()
	})
	return p.Wait(ctx)
}

// Kill sends SIGKILL to the process group now, and to whatever is left of
// the group after the child exits. It is idempotent.
func (p *Process) Kill() error {
	if p.stages != nil {
		return p.signalStages((*Process).Kill)
	}
	err := p.signalGroup(syscall.SIGKILL)
	p.killOnce.Do(func() { close(p.killNow) })
	if err != nil && err != os.ErrProcessDone && err != syscall.ESRCH {
		return fmt.Errorf("netrunner: %q: kill: %w", p.name, err)
	}
	return nil
}

// Stats returns the process's counters so far.
func (p *Process) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{
		BytesIn:   p.bytesIn.Load(),
		BytesOut:  p.bytesOut.Load(),
		BytesErr:  p.bytesErr.Load(),
		Reads:     p.reads.Load(),
		Writes:    p.writes.Load(),
		StartedAt: p.startedAt,
		ExitCode:  -1,
	}
	if !p.reaped {
		st.Duration = time.Since(p.startedAt)
		if p.stages != nil {
			return p.pipelineStats(st)
		}
		return st
	}
	st.Duration = p.exitedAt.Sub(p.startedAt)
	if p.status.Exited() {
		st.ExitCode = p.status.ExitStatus()
	}
	if p.stages != nil {
		return p.pipelineStats(st)
	}
	st.UserTime, st.SystemTime = cpuTimes(&p.rusage)
	st.MaxRSS = maxRSSBytes(&p.rusage)
	return st
}

// signalStages applies signal to every stage and returns the first error
// other than the stage being done already.
func (p *Process) signalStages(signal func(*Process) error) error {
	var first error
	done := 0
	for _, s := range p.stages {
		switch err := signal(s); {
		case err == os.ErrProcessDone:
			done++
		case err != nil && first == nil:
			first = err
		}
	}
	if first == nil && done == len(p.stages) {
		return os.ErrProcessDone
	}
	return first
}

// Stats are a process's counters.
type Stats struct {
	BytesIn, BytesOut, BytesErr int64         // written to stdin, read from stdout, read from stderr
	Reads, Writes               int64         // read and write calls that moved data
	StartedAt                   time.Time     // when the child was started
	Duration                    time.Duration // until exit, or until now while running
	ExitCode                    int           // -1 while running or if signalled
	UserTime, SystemTime        time.Duration // the child's CPU time, from its rusage
	MaxRSS                      int64         // the child's peak resident set, bytes
}
