//go:build unix

package netrunner

import (
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// A rawRead is the read in progress on a Stream, kept in the Stream so that
// the callback given to the poller is made once, not once per read (which
// would allocate per chunk). It belongs to the reader holding sem.
type rawRead struct {
	rc    syscall.RawConn
	try   func(fd uintptr) bool // s.tryRead
	buf   []byte
	src   bufSource
	woken bool // the poller said readable since the read began
	n     int
	err   error
}

// readFile reads the pipe once, waiting on the poller until it is readable.
// A read without a buffer (b nil) takes one only once there is data or an
// end to read, so that while it waits it holds none. It returns the buffer
// it read into.
func (s *Stream) readFile(b []byte, src bufSource) ([]byte, int, error) {
	r := &s.rd
	if r.rc == nil {
		rc, err := s.file.SyscallConn()
		if err != nil {
			return b, 0, err
		}
		r.rc, r.try = rc, s.tryRead
	}
	r.buf, r.src, r.woken, r.n, r.err = b, src, false, 0, nil
	err := r.rc.Read(r.try)
	b, r.buf = r.buf, nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return b, 0, err
	case err != nil:
		return b, 0, os.ErrClosed // the file is closing: the only other error of a pollable file
	case r.err != nil:
		return b, 0, os.NewSyscallError("read", r.err)
	case r.n == 0:
		return b, 0, io.EOF
	}
	return b, r.n, nil
}

// tryRead is readFile's callback: false parks the read until the poller
// says the pipe is readable.
func (s *Stream) tryRead(fd uintptr) bool {
	r := &s.rd
	if r.buf == nil {
		if !r.woken && !readyToRead(int(fd)) {
			r.woken = true
			return false
		}
		r.buf = s.takeBuf(r.src)
	}
	for {
		n, err := readFD(int(fd), r.buf)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if s.dropBuf(r.src) {
				r.buf = nil
			}
			r.woken = true
			return false
		}
		r.n, r.err = n, err
		return true
	}
}

// readyToRead reports whether a read of fd would not wait: data, the end
// of the pipe, or an error.
func readyToRead(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}
