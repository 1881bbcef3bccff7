//go:build unix

package netrunner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A bridge copies one of the channel's output streams into a local pipe.
type bridge struct {
	pipe    *os.File // the pipe's write end, if dst is one
	done    chan struct{}
	waiting atomic.Bool  // parked in a read of the channel
	moved   atomic.Int64 // bytes copied so far
}

// remoteCopyBuffer is a bridge's copy buffer: large enough that a fast
// stream moves several SSH packets (32 KiB) per pipe write.
const remoteCopyBuffer = 128 << 10

// outputQuiet is how long, once the group is gone, the channel may stay
// open without a byte arriving before the bridges stop waiting for its end:
// what the group wrote has arrived by then, and a process that left the
// group and still holds the output must not hold Wait (see endLeftovers).
const outputQuiet = 250 * time.Millisecond

// connect makes the local pipes. The parent ends go to the stage; the
// other ends are the bridges'.
func (r *remoteChild) connect(c *Cmd, w wiring, pending []byte) (_ *stdio, err error) {
	s := &stdio{}
	var opened []*os.File
	defer func() {
		if err != nil {
			for _, f := range opened {
				f.Close()
			}
		}
	}()
	pipe := func(name string, parentReads bool) (parent, bridgeEnd *os.File, err error) {
		parent, fd, err := newPipe(name, parentReads, 0)
		if err != nil {
			return nil, nil, err
		}
		opened = append(opened, parent)
		if err := setNonblock(fd); err != nil {
			closeFD(fd)
			return nil, nil, err
		}
		bridgeEnd = os.NewFile(uintptr(fd), name)
		opened = append(opened, bridgeEnd)
		return parent, bridgeEnd, nil
	}
	var stdoutTo, stderrTo *os.File
	if s.stdout, stdoutTo, err = pipe("stdout", true); err != nil {
		return nil, err
	}
	if c.PTY == nil && (c.Stderr == StderrTail || c.Stderr == StderrStream) {
		if s.stderr, stderrTo, err = pipe("stderr", true); err != nil {
			return nil, err
		}
	}
	if c.Stdin != nil || !w.oneShot {
		if s.stdin.file, r.stdinFrom, err = pipe("stdin", false); err != nil {
			return nil, err
		}
		if c.Stdin != nil {
			// An *os.File too: a remote program cannot be handed a local
			// descriptor, so it is read and copied like any Reader.
			s.copy = c.Stdin
		}
	}
	var stderrDst io.Writer = io.Discard // nothing comes but a login shell's noise
	switch {
	case stderrTo != nil:
		stderrDst = stderrTo
	case c.Stderr == StderrInherit && c.PTY == nil:
		stderrDst = os.Stderr
	}
	r.out = []*bridge{{pipe: stdoutTo, done: make(chan struct{})}, {pipe: stderrTo, done: make(chan struct{})}}
	s.stdoutFed = r.out[0].done
	if stderrTo != nil {
		s.stderrFed = r.out[1].done
	}
	r.startOut = func() {
		go r.copyOut(r.out[0], io.MultiReader(bytes.NewReader(pending), r.ch), stdoutTo)
		go r.copyOut(r.out[1], r.ch.Stderr(), stderrDst)
	}
	return s, nil
}

// startBridges starts the copies: output, and stdin unless it is empty.
func (r *remoteChild) startBridges() {
	r.startOut()
	if r.stdinFrom != nil {
		go r.copyIn()
		return
	}
	// A one-shot run with no Stdin: the program reads end-of-file at once.
	if r.pty {
		r.ch.Write([]byte{ctrlD})
	} else {
		r.ch.CloseWrite()
	}
}

// ctrlD is the default end-of-file character of a terminal (VEOF).
const ctrlD = 0x04

// copyOut copies src into dst until src ends, then closes dst if it is a
// pipe. When the Stream behind dst was closed, the program gets SIGPIPE,
// as a local one writing to a closed pipe would, and the rest is dropped.
//
// Once the group is gone (endLeftovers), the output stops waiting for its
// consumer: what the channel still brings goes to memory until the
// channel's end, and then into the pipe at the consumer's pace. The group
// wrote it already; sshd sends the channel's end, and with it the rest of
// stderr, only once stdout is delivered, and Done waits for the stderr
// tail. It is bounded by what sshd and x/crypto/ssh buffer (each up to the
// 2 MiB window); past maxSpill, a process that left the group is still
// writing, and the channel is closed.
func (r *remoteChild) copyOut(b *bridge, src io.Reader, dst io.Writer) {
	defer close(b.done)
	if b.pipe != nil {
		defer b.pipe.Close()
	}
	buf := make([]byte, remoteCopyBuffer)
	var spilled []byte // non-nil once the consumer is no longer waited for
	for {
		b.waiting.Store(true)
		n, err := src.Read(buf)
		b.waiting.Store(false)
		if n > 0 {
			b.moved.Add(int64(n))
			switch {
			case spilled != nil && len(spilled) < maxSpill:
				spilled = append(spilled, buf[:n]...)
			case spilled != nil:
				r.ch.Close()
			default:
				m, werr := dst.Write(buf[:n])
				switch {
				case werr == nil:
				case errors.Is(werr, os.ErrDeadlineExceeded):
					spilled = append(make([]byte, 0, n-m), buf[m:n]...)
				case isQuietPipeEnd(werr):
					r.signalRunning("PIPE")
					dst = io.Discard
				default:
					dst = io.Discard
				}
			}
		}
		if err != nil {
			break
		}
	}
	if len(spilled) > 0 {
		b.pipe.SetWriteDeadline(time.Time{})
		dst.Write(spilled)
	}
}

// maxSpill bounds what a bridge keeps in memory after the group is gone.
const maxSpill = 16 << 20

// stopWaitingForConsumers makes the bridges spill (see copyOut).
func (r *remoteChild) stopWaitingForConsumers() {
	for _, b := range r.out {
		if b.pipe != nil {
			b.pipe.SetWriteDeadline(past)
		}
	}
}

// copyIn copies the local stdin pipe into the channel. The end of the
// pipe (CloseStdin, or the end of Cmd.Stdin) ends the channel's input; on
// a terminal, which has no end, it types the end-of-file character instead,
// twice after a partial line (the first only hands the line over), which a
// program reading the terminal in canonical mode sees as the end. A program
// that stops reading or exits ends the copy, and the caller's writes then
// fail quietly, as with a local pipe.
func (r *remoteChild) copyIn() {
	defer r.stdinFrom.Close()
	buf := make([]byte, 32<<10)
	last := byte('\n')
	for {
		n, err := r.stdinFrom.Read(buf)
		if n > 0 {
			if _, werr := r.ch.Write(buf[:n]); werr != nil {
				return
			}
			last = buf[n-1]
		}
		if err == io.EOF {
			switch {
			case !r.pty:
				r.ch.CloseWrite()
			case last == '\n':
				r.ch.Write([]byte{ctrlD})
			default:
				r.ch.Write([]byte{ctrlD, ctrlD})
			}
		}
		if err != nil {
			return
		}
	}
}

// signalRunning signals the group, unless the exit status came.
func (r *remoteChild) signalRunning(sig string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.exited {
		r.ctl.send("kill", sig, r.pgid)
	}
}

// wait waits for the exit status that sshd sends when it reaps the program.
func (r *remoteChild) wait(mu *sync.Mutex, exited func(exitStatus, error)) {
	e := <-r.exit
	r.mu.Lock()
	r.exited = true
	r.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if !e.ok {
		exited(exitStatus{code: -1}, fmt.Errorf("%s: no exit status: the connection was lost or sshd ended the session", r.host.name))
		return
	}
	st := exitStatus{code: e.code}
	if e.signal != "" {
		st.code, st.signal = -1, remoteSignal(e.signal)
	}
	exited(st, nil)
}

// signalGroup sends sig to the remote group through the control session.
// It does not wait for the answer, since the stage holds its lock: signals
// arrive in the order they were sent. Signal 0 waits, to say whether the
// group exists.
func (r *remoteChild) signalGroup(sig syscall.Signal) error {
	if sig == 0 {
		rc, err := r.ctl.request("kill", "0", r.pgid)
		if err == nil && rc != 0 {
			err = syscall.ESRCH
		}
		return err
	}
	name, ok := remoteSignals[sig]
	if !ok {
		return fmt.Errorf("%v has no name a remote host would know: %w", sig, ErrUnsupported)
	}
	_, err := r.ctl.send("kill", name, r.pgid)
	return err
}

// endLeftovers ends what is left of the group after the exit, as for a
// local child (TERM and CONT, then KILL after grace), polling the group
// through the control session, and then lets the output finish on its own
// (see finishOutput).
func (r *remoteChild) endLeftovers(grace time.Duration, killNow <-chan struct{}) {
	if r.ctl.alive(r.pgid) {
		if grace >= 0 && !isClosed(killNow) {
			r.ctl.send("kill", "TERM", r.pgid)
			r.ctl.send("kill", "CONT", r.pgid)
			deadline := time.NewTimer(grace)
			r.pollGroup(deadline.C, killNow)
			deadline.Stop()
		}
		r.ctl.send("kill", "KILL", r.pgid)
		giveUp := time.NewTimer(remoteKillWait)
		r.pollGroup(giveUp.C, nil)
		giveUp.Stop()
	}
	if !r.ctl.alive(r.pgid) {
		// Gone: forgotten at once, so that no later kill, not even the
		// control session's at the end of the connection, can reach a
		// group that reuses the id.
		r.ctl.send("forget", "-", r.pgid)
	}
	r.stopWaitingForConsumers()
	r.finishOnce.Do(func() { go r.finishOutput() })
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// pollGroup returns once the group has no member, or stop or hurry fires.
func (r *remoteChild) pollGroup(stop <-chan time.Time, hurry <-chan struct{}) {
	pollUntil(func() bool { return !r.ctl.alive(r.pgid) }, stop, hurry)
}

// finishOutput runs once the group is gone, and closes the channel when
// the bridges are done. sshd sends all the group wrote and then the
// channel's end, which comes once the last process holding the output is
// gone; the bridges deliver it at the consumers' pace, as a local pipe
// would hold it. But if every bridge waits for the channel and nothing
// arrives for outputQuiet, what the group wrote has arrived and a process
// that left the group holds the output: the channel is closed, which ends
// the bridges.
func (r *remoteChild) finishOutput() {
	defer r.ch.Close()
	tick := time.NewTicker(outputQuiet / 5)
	defer tick.Stop()
	last, idle := int64(-1), 0
	for _, b := range r.out {
		for done := false; !done; {
			select {
			case <-b.done:
				done = true
			case <-tick.C:
				moved, waiting := r.outputState()
				if waiting && moved == last {
					idle++
				} else {
					idle = 0
				}
				last = moved
				if idle >= 5 {
					r.ch.Close()
				}
			}
		}
	}
}

// outputState sums the bytes the bridges moved and says whether every
// unfinished one waits for the channel.
func (r *remoteChild) outputState() (moved int64, waiting bool) {
	waiting = true
	for _, b := range r.out {
		moved += b.moved.Load()
		if !isClosed(b.done) && !b.waiting.Load() {
			waiting = false
		}
	}
	return moved, waiting
}

// release closes the stdin copy's pipe end, which ends the copy if it
// still waits for the caller; the channel closes once the output is
// delivered (finishOutput).
func (r *remoteChild) release() {
	if r.stdinFrom != nil {
		r.stdinFrom.Close()
	}
	r.finishOnce.Do(func() { go r.finishOutput() })
}

// resize sends the terminal's new size: sshd sets it, and the program
// gets SIGWINCH.
func (r *remoteChild) resize(ws Winsize) error { return windowChange(r.ch, ws) }

// endInput does nothing: the end of the local stdin pipe reaches copyIn
// after the last byte, and copyIn types the end-of-file character.
func (r *remoteChild) endInput(int32, <-chan struct{}) {}

// remoteKillWait bounds the wait for a SIGKILLed group to go: a process in
// uninterruptible sleep is left to the remote kernel rather than holding up
// Wait forever.
const remoteKillWait = 5 * time.Second
