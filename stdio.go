package netrunner

import (
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

	stdin  lazyPipe  // the parent writes here: Process.Write or the copy from copyFrom
	copy   io.Reader // Cmd.Stdin, when it must be copied in
	stdout *os.File
	stderr *os.File // StderrStream, and a remote child's StderrTail
	tail   lazyPipe // a local child's StderrTail
	pty    *os.File // the terminal master; also stdin and stdout above
	eofNow bool     // type the terminal's end-of-file at once: no input to give

	// A remote child's output comes through pipes that bridges feed from
	// the SSH channel; each closes once its bridge closed the pipe.
	stdoutFed, stderrFed <-chan struct{}
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
	// makeLazyPipe is makePipe for a pipe that may never be used.
	makeLazyPipe := func(parentReads bool) (lazyPipe, int, error) {
		parent, child, err := newPipeFDs(parentReads, c.PipeSize)
		if err != nil {
			return lazyPipe{}, -1, err
		}
		s.ours = append(s.ours, child)
		return lazyPipe{fd: parent, unwrapped: true}, child, nil
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
			// For Process.Write, which many callers never use.
			s.stdin, s.child[0], err = makeLazyPipe(false)
		}
	case *os.File:
		s.userFile = in
		s.child[0] = int(in.Fd())
	default:
		s.copy = in
		s.stdin.file, s.child[0], err = makePipe("stdin", false)
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
	case StderrTail:
		s.tail, s.child[2], err = makeLazyPipe(true)
	case StderrStream:
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
	for _, f := range []*os.File{s.stdout, s.stderr, s.pty} {
		if f != nil {
			f.Close()
		}
	}
	s.stdin.close()
	s.tail.close()
}

// A lazyPipe is the parent's end of a pipe that may never be used, wrapped
// by os.NewFile, which registers it with the runtime poller, only once it
// is: a stdin pipe for Process.Write, which many callers never call, and a
// stderr tail's pipe, which most processes leave empty (it is only waited
// for, see onReadable, and closed, until it has data). One may also come
// wrapped: a remote child's from its bridge, a terminal, a copy's pipe.
type lazyPipe struct {
	fd        int
	unwrapped bool     // fd is the pipe's, not yet wrapped
	file      *os.File // once wrapped
}

// wrap returns the pipe as a file, wrapping it if it is not yet.
func (t *lazyPipe) wrap(name string) *os.File {
	if t.unwrapped {
		t.file, t.unwrapped = os.NewFile(uintptr(t.fd), name), false
	}
	return t.file
}

// close closes the pipe, wrapped or not.
func (t *lazyPipe) close() {
	if t.unwrapped {
		closeFD(t.fd)
		t.unwrapped = false
	} else if t.file != nil {
		t.file.Close()
	}
}
