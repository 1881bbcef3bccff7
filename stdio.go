package netrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// stdio holds the three descriptors a child starts with and the parent's
// ends of the pipes among them, from creation until the spawn.
type stdio struct {
	child    [3]int // what the child gets as fds 0, 1 and 2
	ours     []int  // descriptors opened for the child, closed after the spawn
	userFile *os.File

	stdin  *os.File  // the parent writes here: Process.Write or the copy from copyFrom
	copy   io.Reader // Cmd.Stdin, when it must be copied in
	stdout *os.File
	stderr *os.File // StderrTail and StderrStream
	pty    *os.File // the terminal master; also stdin and stdout above
	eofNow bool     // type the terminal's end-of-file at once: no input to give
}

func (c *Cmd) newStdio(w wiring) (s *stdio, err error) {
	s = &stdio{child: [3]int{-1, -1, -1}}
	defer func() {
		if err != nil {
			s.closeChildEnds()
			s.closeParentEnds()
		}
	}()
	if c.PTY != nil {
		s.copy = c.Stdin
		s.eofNow = w.oneShot && c.Stdin == nil
		return s, s.openPTY(c)
	}
	// A pipe is made, its child end noted as one of ours to close after the
	// spawn; the parent end is returned.
	makePipe := func(name string, parentReads bool) (*os.File, int, error) {
		parent, child, err := newPipe(name, parentReads, c.PipeSize)
		if err != nil {
			return nil, -1, err
		}
		s.ours = append(s.ours, child)
		return parent, child, nil
	}
	devNull := -1
	openDevNull := func() (int, error) {
		if devNull < 0 {
			fd, err := openDevNull()
			if err != nil {
				return -1, err
			}
			s.ours = append(s.ours, fd)
			devNull = fd
		}
		return devNull, nil
	}

	switch in := c.Stdin.(type) {
	case nil:
		switch {
		case w.stdin >= 0:
			s.child[0] = w.stdin
		case w.oneShot:
			s.child[0], err = openDevNull()
		default:
			s.stdin, s.child[0], err = makePipe("stdin", false)
		}
	case *os.File:
		s.userFile = in
		s.child[0] = int(in.Fd())
	default:
		s.copy = in
		s.stdin, s.child[0], err = makePipe("stdin", false)
	}
	if err != nil {
		return s, err
	}
	if w.stdout >= 0 {
		s.child[1] = w.stdout
	} else if s.stdout, s.child[1], err = makePipe("stdout", true); err != nil {
		return s, err
	}
	switch c.Stderr {
	case StderrTail, StderrStream:
		s.stderr, s.child[2], err = makePipe("stderr", true)
	case StderrToStdout:
		s.child[2] = s.child[1]
	case StderrDiscard:
		s.child[2], err = openDevNull()
	case StderrInherit:
		s.child[2] = int(os.Stderr.Fd())
	}
	return s, err
}

func (s *stdio) childFiles() []uintptr {
	return []uintptr{uintptr(s.child[0]), uintptr(s.child[1]), uintptr(s.child[2])}
}

// closeChildEnds runs once the child has its copies (or the spawn failed).
func (s *stdio) closeChildEnds() {
	for _, fd := range s.ours {
		closeFD(fd)
	}
	s.ours = nil
	runtime.KeepAlive(s.userFile)
}

// closeParentEnds undoes newStdio after a failed start.
func (s *stdio) closeParentEnds() {
	for _, f := range []*os.File{s.stdin, s.stdout, s.stderr, s.pty} {
		if f != nil {
			f.Close()
		}
	}
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

// Write writes b to the child's stdin, waiting while the pipe is full. When
// ctx ends first, it returns how much was written and ctx's error. Writes
// from several goroutines do not interleave. After CloseStdin, or when
// Cmd.Stdin feeds the child, it returns an error wrapping ErrStdinClosed.
func (p *Process) Write(ctx context.Context, b []byte) (int, error) {
	if p.stages != nil {
		return p.stages[0].Write(ctx, b)
	}
	if !p.stdinOwned {
		return 0, fmt.Errorf("netrunner: %q: write: %w", p.name, errStdinNotPipe)
	}
	select {
	case p.stdinSem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-p.stdinSem }()
	if p.stdinDone.Load() {
		return 0, fmt.Errorf("netrunner: %q: write: %w", p.name, ErrStdinClosed)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p.stdinWatch.watch(ctx)
	n, err := p.stdin.Write(b)
	err = ctxErr(ctx, err)
	p.countWrite(b[:n])
	switch {
	case err == nil, ctx.Err() != nil && err == ctx.Err():
	case errors.Is(err, os.ErrClosed):
		err = fmt.Errorf("netrunner: %q: write: %w", p.name, ErrStdinClosed)
	default:
		err = fmt.Errorf("netrunner: %q: write: %w", p.name, err)
	}
	return n, err
}

// countWrite counts written, the bytes that reached the child.
func (p *Process) countWrite(written []byte) {
	if n := len(written); n > 0 {
		p.lastIn.Store(int32(written[n-1]))
		p.bytesIn.Add(int64(n))
		p.writes.Add(1)
	}
}

// CloseStdin closes the child's stdin: the child reads EOF. It also ends the
// copy of Cmd.Stdin: the copy writes no more. It is idempotent.
//
// On a PTY, stdin is the terminal, which stays open for reading: CloseStdin
// ends the writing side and types the terminal's end-of-file character
// (VEOF, normally Ctrl-D) once, which a child reading the terminal in
// canonical mode sees as the end of its input. A child that turns canonical
// mode off reads no end-of-file from the terminal: it ends when it exits by
// itself or the context ends.
func (p *Process) CloseStdin() error {
	if p.stages != nil {
		return p.stages[0].CloseStdin()
	}
	p.closeStdin(true)
	return nil
}

// closeStdin ends the writing side of stdin, once; on a terminal, eof says
// to tell the child with the end-of-file character. Close waits for a write
// in progress, so the end-of-file comes after the last byte written.
func (p *Process) closeStdin(eof bool) {
	p.stdinShut.Do(func() {
		p.stdinDone.Store(true)
		if p.stdin != nil {
			p.stdin.Close()
			p.stdinWatch.unwatch()
		}
		if eof && p.pty != nil {
			p.typeEOF()
		}
	})
}

// copyStdin copies Cmd.Stdin into the child with backpressure: each write
// waits for the child to read. A child that exits or stops reading, or
// CloseStdin, ends the copy quietly. A terminal is told the input ended by
// its end-of-file character, since closing our end would not close it.
func (p *Process) copyStdin(r io.Reader) {
	buf := make([]byte, 32<<10)
	for !p.stdinDone.Load() {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := p.stdin.Write(buf[:n])
			p.countWrite(buf[:m])
			if werr != nil {
				if !isQuietPipeEnd(werr) {
					p.setCopyErr(werr)
				}
				p.closeStdin(false)
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				p.setCopyErr(err)
			}
			break
		}
	}
	p.closeStdin(true)
}

func (p *Process) setCopyErr(err error) {
	p.mu.Lock()
	p.copyErr = err
	p.mu.Unlock()
}
