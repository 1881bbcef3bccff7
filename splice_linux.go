package netrunner

import (
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// spliceTo copies the Stream into w with splice(2), so that the data moves
// from pipe to pipe, socket or file inside the kernel, never through a Go
// buffer. It handles w only if w is a file or socket that splice can write
// (ok false leaves w to the copying loop, having moved nothing). Like the
// copying loop it reads only as fast as w accepts: it waits for w to take
// data before taking more from the pipe.
func (s *Stream) spliceTo(w io.Writer) (total int64, ok bool, err error) {
	sc, isConn := w.(syscall.Conn)
	if !isConn || s.pty {
		return 0, false, nil
	}
	wrc, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var pollable bool
	if cerr := wrc.Control(func(fd uintptr) { ok, pollable = spliceable(int(fd)) }); cerr != nil || !ok {
		return 0, false, nil
	}
	rrc, err := s.file.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	for {
		n, err := s.spliceOnce(rrc, wrc, pollable)
		total += n
		if err == io.EOF {
			return total, true, nil
		}
		if err != nil {
			return total, true, err
		}
	}
}

// spliceable reports whether splice can write to fd, and whether fd is
// nonblocking, in which case the poller can wait for it.
func spliceable(fd int) (ok, nonblocking bool) {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return false, false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFREG:
	default:
		return false, false
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_APPEND != 0 { // splice refuses O_APPEND
		return false, false
	}
	return true, flags&unix.O_NONBLOCK != 0
}

// spliceOnce moves up to one chunk. It returns io.EOF at the end of the
// Stream, and falls back to the Stream's ordinary reads once the process is
// gone (see drainOnly), or on a Close.
func (s *Stream) spliceOnce(rrc, wrc syscall.RawConn, pollable bool) (int64, error) {
	s.sem <- struct{}{}
	defer s.release()
	if err := s.ended(); err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		return 0, err
	}
	if s.drainOnly.Load() {
		return 0, errDrainOnly
	}
	var n int
	var serr error
	destFull := false
	move := func(rfd, wfd uintptr) {
		for {
			var moved int64
			moved, serr = unix.Splice(int(rfd), nil, int(wfd), nil, s.chunkSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			n = int(moved)
			if serr != unix.EINTR {
				break
			}
		}
		// EAGAIN means the pipe is empty or w is full; only the pipe
		// knows which.
		destFull = serr == unix.EAGAIN && pipeHasData(int(rfd))
	}
	// Wait on the pipe until a splice moves data or finds w full.
	err := rrc.Read(func(rfd uintptr) bool {
		werr := wrc.Control(func(wfd uintptr) { move(rfd, wfd) })
		if werr != nil {
			serr = werr
			return true
		}
		return serr != unix.EAGAIN || destFull
	})
	// Then, while w is full, wait on w.
	for err == nil && serr == unix.EAGAIN && destFull {
		if pollable {
			err = wrc.Write(func(wfd uintptr) bool {
				if cerr := rrc.Control(func(rfd uintptr) { move(rfd, wfd) }); cerr != nil {
					serr = cerr
					return true
				}
				return serr != unix.EAGAIN || !destFull
			})
		} else {
			// A blocking w is not on the poller: wait for it like a
			// blocking write would, in poll(2).
			err = wrc.Control(func(wfd uintptr) {
				fds := []unix.PollFd{{Fd: int32(wfd), Events: unix.POLLOUT}}
				for {
					if _, perr := unix.Poll(fds, -1); perr != unix.EINTR {
						break
					}
				}
			})
			if err == nil {
				err = rrc.Control(func(rfd uintptr) {
					wrc.Control(func(wfd uintptr) { move(rfd, wfd) })
				})
			}
		}
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && s.drainOnly.Load():
		return 0, errDrainOnly
	case errors.Is(err, os.ErrClosed):
		return 0, s.ended()
	case err != nil:
		return 0, err
	case serr == unix.EAGAIN:
		return 0, nil // the pipe emptied meanwhile; go round again
	case serr != nil:
		return 0, os.NewSyscallError("splice", serr)
	case n == 0:
		s.setEnd(io.EOF)
		return 0, io.EOF
	}
	s.bytes.Add(int64(n))
	s.reads.Add(1)
	return int64(n), nil
}

// errDrainOnly hands the rest of a Stream whose process is gone back to the
// ordinary reads.
var errDrainOnly = errors.New("drain only")

func pipeHasData(fd int) bool {
	n, err := pipeBuffered(fd)
	return err == nil && n > 0
}
