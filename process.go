package netrunner

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Process is a started command: one child for Cmd.Start, one per stage
// for a Pipeline. Its methods are safe for concurrent use.
type Process struct {
	Stdout *Stream // stdout (and stderr with StderrToStdout; the terminal with PTY)
	Stderr *Stream // non-nil only with StderrStream

	name    string
	stages  []*stage // in pipeline order; one for Cmd.Start
	running atomic.Int32
	done    chan struct{}

	mu      sync.Mutex // guards the fields below, set once every stage is done
	exit    exitStatus // the rightmost failed stage's, or the last stage's
	waitErr error
}

// newProcess makes the Process of n stages about to be started (newStage
// fills them in). Each stage tells it when it is done (see stageDone), so
// it needs no goroutine of its own.
func newProcess(name string, n int) *Process {
	p := &Process{name: name, stages: make([]*stage, n), done: make(chan struct{})}
	p.running.Store(int32(n))
	return p
}

// started makes the last stage's streams the Process's, once every stage
// is started.
func (p *Process) started() *Process {
	last := p.stages[len(p.stages)-1]
	p.Stdout, p.Stderr = last.stdout, last.stderr
	return p
}

// stageDone runs when a stage is done; the last one to finish settles the
// Process. It reads every stage: each was in p.stages before its
// supervision began, and so before its own stageDone. The Process's error
// is that of the failed stages, rightmost first, as bash's pipefail reports
// it; a single stage's error is its own.
func (p *Process) stageDone() {
	if p.running.Add(-1) > 0 {
		return
	}
	var failed *stage
	var errs []error
	for i := len(p.stages) - 1; i >= 0; i-- {
		s := p.stages[i]
		err := s.result()
		if err == nil || i < len(p.stages)-1 && readerEnded(s, p.stages[i+1]) {
			continue
		}
		if failed == nil {
			failed = s
		}
		errs = append(errs, err)
	}
	if failed == nil {
		failed = p.stages[len(p.stages)-1]
	}
	failed.mu.Lock()
	exit := failed.exit
	failed.mu.Unlock()
	var err error
	switch len(errs) {
	case 0:
	case 1:
		err = errs[0]
	default:
		err = errors.Join(errs...)
	}
	p.mu.Lock()
	p.exit, p.waitErr = exit, err
	p.mu.Unlock()
	close(p.done)
}

// Pid returns the process id of the child, which is also its process group
// id; for a pipeline, the first stage's.
func (p *Process) Pid() int { return p.stages[0].pid }

// Done returns a channel closed once the process has exited, been reaped,
// and nothing is left of its process group (for a pipeline: of every
// stage's).
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
		return commandError(p.name, "wait", contextError(ctx))
	}
}

func (p *Process) result() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// ExitCode returns the exit code of the exited process, or -1 while it is
// running or when a signal ended it. It is known once the child is reaped,
// before what is left of its group is gone. A pipeline's is its rightmost
// failed stage's, or the last stage's when none failed, once every stage
// is reaped.
func (p *Process) ExitCode() int {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exit.code
	default:
	}
	for _, s := range p.stages {
		s.mu.Lock()
		reaped := s.reaped
		s.mu.Unlock()
		if !reaped {
			return -1
		}
	}
	last := len(p.stages) - 1
	for i := last; i >= 0; i-- {
		s := p.stages[i]
		s.mu.Lock()
		code := s.exit.code // -1 when signalled
		s.mu.Unlock()
		if code != 0 && (i == last || !readerEnded(s, p.stages[i+1])) {
			return code
		}
	}
	return 0
}

// Signal sends sig to the process group of the child (of every stage, for
// a pipeline). Once the child has been reaped it returns an error wrapping
// os.ErrProcessDone. Signal 0 only checks that the group can be signalled.
// On windows the group is the child's job object: SIGKILL terminates it,
// SIGINT sends CTRL_BREAK_EVENT to the child's console process group, and
// other signals but 0 return an error wrapping ErrUnsupported.
func (p *Process) Signal(sig syscall.Signal) error {
	if sig < 0 || sig > maxSignal {
		return commandErrorf(p.name, "signal %d is outside 0..%d", int(sig), maxSignal)
	}
	if err := p.eachStage(func(s *stage) error { return s.signalGroup(sig) }); err != nil {
		op := sig.String() // "terminated", or "signal 0" for one without a name
		if !strings.HasPrefix(op, "signal ") {
			op = "signal " + op
		}
		return commandError(p.name, op, err)
	}
	return nil
}

// Stop stops the process gracefully: SIGTERM to its group, followed by
// SIGCONT so that a stopped member can act on it, then SIGKILL after
// KillTimeout (at once if KillTimeout < 0), and waits until it is
// reaped. It returns what Wait returns; ctx bounds the waiting only, the
// SIGKILL comes on time either way. Stop is idempotent and safe to call
// after the process exited. A pipeline's stages stop together, each with
// its own KillTimeout. On windows, Stop sends CTRL_BREAK_EVENT where
// Unix has SIGTERM (or terminates at once, without a console to carry it)
// and terminates the job object where Unix has SIGKILL.
func (p *Process) Stop(ctx context.Context) error {
	for _, s := range p.stages {
		s.stop()
	}
	return p.Wait(ctx)
}

// Kill sends SIGKILL to the process group now, and to whatever is left of
// the group after the child exits. It is idempotent.
func (p *Process) Kill() error {
	err := p.eachStage((*stage).kill)
	if err != nil && err != os.ErrProcessDone {
		return commandError(p.name, "kill", err)
	}
	return nil
}

// eachStage applies act to every stage and returns the first error other
// than the stage being done already, or os.ErrProcessDone when every stage
// is.
func (p *Process) eachStage(act func(*stage) error) error {
	var first error
	done := 0
	for _, s := range p.stages {
		switch err := act(s); {
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

// Write writes b to the child's stdin (the first stage's), waiting while
// the pipe is full. When ctx ends first, it returns how much was written
// and ctx's error. Writes from several goroutines do not interleave. After
// CloseStdin, or when Cmd.Stdin feeds the child, it returns an error
// wrapping ErrStdinClosed.
func (p *Process) Write(ctx context.Context, b []byte) (int, error) {
	return p.stages[0].stdin.write(ctx, b)
}

// CloseStdin closes the child's stdin (the first stage's): the child reads
// EOF. It also ends the copy of Cmd.Stdin: the copy writes no more. It is
// idempotent.
//
// On a PTY, stdin is the terminal, which stays open for reading: CloseStdin
// ends the writing side and types the terminal's end-of-file character
// (VEOF, normally Ctrl-D) once, which a child reading the terminal in
// canonical mode sees as the end of its input. A child that turns canonical
// mode off reads no end-of-file from the terminal: it ends when it exits by
// itself or the context ends.
func (p *Process) CloseStdin() error {
	p.stages[0].stdin.close(true)
	return nil
}

// Resize sets the terminal's size; the child gets SIGWINCH. It is an error
// on a process without a PTY.
func (p *Process) Resize(ws Winsize) error {
	s := p.stages[0]
	if s.terminal == nil {
		return commandErrorf(p.name, "resize: the process has no PTY")
	}
	if err := s.terminal.resize(ws); err != nil {
		return commandError(p.name, "resize", err)
	}
	return nil
}

// Stats returns the process's counters so far. A pipeline's count bytes
// into the first stage and out of the last (the bytes between stages never
// pass through Go), and add up the stages' reads, writes and CPU times.
func (p *Process) Stats() Stats {
	st := Stats{ExitCode: p.ExitCode()}
	var end time.Time
	for i, s := range p.stages {
		ss := s.stats()
		if i == 0 {
			st.BytesIn, st.StartedAt = ss.BytesIn, ss.StartedAt
		}
		if i == len(p.stages)-1 {
			st.BytesOut = ss.BytesOut
		}
		st.BytesErr += ss.BytesErr
		st.Reads += ss.Reads
		st.Writes += ss.Writes
		st.UserTime += ss.UserTime
		st.SystemTime += ss.SystemTime
		st.MaxRSS = max(st.MaxRSS, ss.MaxRSS)
		if e := ss.StartedAt.Add(ss.Duration); e.After(end) {
			end = e
		}
	}
	st.Duration = end.Sub(st.StartedAt)
	return st
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
