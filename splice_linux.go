package netrunner

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// spliceTo copies the Stream into w with splice(2), so that the data moves
// from pipe to pipe, socket or file inside the kernel, never through a Go
// buffer. It handles w only if w is a file or socket that splice can write;
// ok false leaves the rest to the copying loop: w is not such a file, splice
// refused it, or the process is gone (see drainOnly). Like the copying loop
// it reads only as fast as w accepts: it waits for w to take data before
// taking more from the pipe.
func (s *Stream) spliceTo(ctx context.Context, w io.Writer) (total int64, ok bool, err error) {
	sc, isConn := w.(syscall.Conn)
	if !isConn || s.pty {
		return 0, false, nil
	}
	sp := &splicer{s: s, ctx: ctx}
	if sp.wrc, err = sc.SyscallConn(); err != nil {
		return 0, false, nil
	}
	if cerr := sp.wrc.Control(func(fd uintptr) { ok, sp.pollable = spliceable(int(fd)) }); cerr != nil || !ok {
		return 0, false, nil
	}
	if sp.rrc, err = s.file.SyscallConn(); err != nil {
		return 0, false, nil
	}
	// The callbacks are made once here, not once per splice: the steady
	// state allocates nothing.
	sp.whenReadable, sp.whenWritable = sp.tryFromRead, sp.tryFromWrite
	sp.withDest, sp.withSource = sp.moveToDest, sp.moveFromSource
	sp.waitBlocking = sp.pollDest
	for {
		n, err := sp.once()
		total += n
		switch err {
		case nil:
		case io.EOF:
			return total, true, nil
		case errDrainOnly, errCannotSplice:
			return total, false, nil
		default:
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

// A splicer moves one Stream into one destination.
type splicer struct {
	s        *Stream
	ctx      context.Context
	rrc, wrc syscall.RawConn // the Stream's pipe and the destination
	pollable bool            // the destination is on the poller

	// The outcome of the last splice, and the descriptor being used while
	// the other one is held.
	n        int
	err      error // from splice(2)
	srcErr   error // from the pipe's RawConn while w is held
	destErr  error // from the destination's RawConn: it is closed
	destFull bool
	fd       uintptr

	whenReadable, whenWritable func(uintptr) bool
	withDest, withSource       func(uintptr)
	waitBlocking               func(uintptr)
}

// spliceMax is the most one splice moves: as much as a hot pipe holds, since
// no user-space chunk limits it.
const spliceMax = hotPipeSize

// once moves what one splice can. It returns io.EOF at the end of the
// Stream; errDrainOnly once the process is gone (the rest goes by ordinary
// reads, which bound it; see drainOnly); errCannotSplice when splice refuses
// w, having moved nothing, so that the copying loop gives w's own error.
func (sp *splicer) once() (int64, error) {
	s := sp.s
	if err := s.acquire(sp.ctx); err != nil {
		return 0, err
	}
	defer s.release()
	if err := s.ended(); err != nil {
		return 0, err
	}
	if err := sp.ctx.Err(); err != nil {
		return 0, err
	}
	if s.drainOnly.Load() {
		return 0, errDrainOnly
	}
	s.watch.watch(sp.ctx)
	// Wait on the pipe until a splice moves data or finds w full; then,
	// while w is full, wait on w.
	sp.err, sp.srcErr, sp.destErr = nil, nil, nil
	err := sp.rrc.Read(sp.whenReadable)
	for err == nil && sp.srcErr == nil && sp.destErr == nil && sp.err == unix.EAGAIN && sp.destFull {
		if sp.pollable {
			sp.destErr = sp.wrc.Write(sp.whenWritable)
			continue
		}
		// A blocking w is not on the poller: wait for it in poll(2), as a
		// blocking write would.
		if sp.destErr = sp.wrc.Control(sp.waitBlocking); sp.destErr == nil {
			err = sp.rrc.Control(sp.withDest)
		}
	}
	if err == nil {
		err = sp.srcErr
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && s.drainOnly.Load():
		return 0, errDrainOnly
	case errors.Is(err, os.ErrDeadlineExceeded) && sp.ctx.Err() != nil:
		return 0, sp.ctx.Err()
	case err != nil:
		// The pipe was closed under us: Close or the end of the drain.
		if end := s.ended(); end != nil {
			return 0, end
		}
		return 0, err
	case sp.destErr != nil:
		return 0, destError(sp.destErr)
	case sp.err == unix.EAGAIN:
		return 0, nil // the pipe emptied meanwhile; go round again
	case sp.err == unix.EINVAL, sp.err == unix.EOPNOTSUPP:
		return 0, errCannotSplice // w takes writes but not splices: /dev/full, /dev/kmsg
	case sp.err != nil:
		return 0, os.NewSyscallError("splice", sp.err)
	case sp.n == 0:
		s.setEnd(io.EOF)
		return 0, io.EOF
	}
	s.bytes.Add(int64(sp.n))
	s.reads.Add(1)
	s.noteFullness(sp.n >= s.chunkSize)
	return int64(sp.n), nil
}

// destError turns what the destination's RawConn returned into what a
// write would have: the poller's "use of closed file" is os.ErrClosed.
func destError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return &os.PathError{Op: "write", Path: "destination", Err: os.ErrClosed}
}

// tryFromRead splices with the pipe held; false waits for the pipe.
func (sp *splicer) tryFromRead(rfd uintptr) bool {
	sp.fd = rfd
	if err := sp.wrc.Control(sp.withSource); err != nil {
		sp.destErr = err
		return true
	}
	return sp.err != unix.EAGAIN || sp.destFull
}

// tryFromWrite splices with w held; false waits for w.
func (sp *splicer) tryFromWrite(wfd uintptr) bool {
	sp.fd = wfd
	if err := sp.rrc.Control(sp.withDest); err != nil {
		sp.srcErr = err
		return true
	}
	return sp.err != unix.EAGAIN || !sp.destFull
}

func (sp *splicer) moveFromSource(wfd uintptr) { sp.move(sp.fd, wfd) }
func (sp *splicer) moveToDest(rfd uintptr)     { sp.move(rfd, sp.fd) }

func (sp *splicer) move(rfd, wfd uintptr) {
	for {
		// Splice returns an int on 32-bit systems and an int64 on 64-bit ones.
		n, err := unix.Splice(int(rfd), nil, int(wfd), nil, spliceMax, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		sp.n, sp.err = int(n), err
		if sp.err != unix.EINTR {
			break
		}
	}
	// EAGAIN means the pipe is empty or w is full; only the pipe knows which.
	sp.destFull = sp.err == unix.EAGAIN && pipeHasData(int(rfd))
}

func (sp *splicer) pollDest(wfd uintptr) {
	sp.fd = wfd
	fds := []unix.PollFd{{Fd: int32(wfd), Events: unix.POLLOUT}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

// errDrainOnly hands the rest of a Stream whose process is gone back to the
// ordinary reads; errCannotSplice hands a destination that splice refuses to
// the copying loop.
var (
	errDrainOnly    = errors.New("drain only")
	errCannotSplice = errors.New("cannot splice")
)

func pipeHasData(fd int) bool {
	n, err := pipeBuffered(fd)
	return err == nil && n > 0
}
