package netrunner

import (
	"io"
	"os"
	"syscall"
)

// ptyDrainMost bounds what a terminal's reader takes once the process is
// gone. A terminal cannot say how much it holds: FIONREAD counts only the
// line discipline's buffer, not the data still on its way there. So the
// drain reads until the terminal is empty, and this bound, far above what a
// Linux pseudo-terminal buffers (tens of KiB), only stops a descendant that
// escaped the group and keeps writing from holding the reader forever.
const ptyDrainMost = 1 << 20

// processGone runs once the process and every process in its group are
// gone: what the pipe holds now is all that is left to read. An empty pipe
// ends the Stream at once, releasing its descriptor whether or not anyone
// reads it. Otherwise the Stream drains: reads take what is buffered without
// waiting (a reader parked on the pipe is woken by an expired deadline), at
// most drainLeft more bytes, and the Stream ends when the pipe is empty, so
// a descendant that escaped the group and still holds the pipe cannot keep
// the Stream open.
//
// A remote process's Stream is fed by a bridge from the SSH channel (see
// remoteChild): its pipe holds all there is only once the bridge has
// closed it, which may be after the group is gone.
func (s *Stream) processGone() {
	if s.fed != nil {
		go func() {
			<-s.fed
			s.pipeIsFinal()
		}()
		return
	}
	s.pipeIsFinal()
}

// pipeIsFinal is processGone once nothing more can enter the pipe.
func (s *Stream) pipeIsFinal() {
	s.gone.Store(true)
	if s.ended() != nil {
		s.closeFile() // a terminal's master is left open until now: see readLocked
		return
	}
	left, empty := int64(-1), false
	if rc, err := s.file.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			switch {
			case s.pty:
				left, empty = ptyDrainMost, !s.holdsData(int(fd))
			default:
				if n, err := pipeBuffered(int(fd)); err == nil {
					left, empty = int64(n), n == 0
				}
			}
		})
	}
	if empty {
		s.setEnd(io.EOF)
		return
	}
	s.drainLeft.Store(left)
	s.drainOnly.Store(true)
	s.file.SetReadDeadline(past)
}

// holdsData reports whether a read of fd would find data now. On a terminal
// it asks poll(2), which first moves data on its way into the line
// discipline's buffer, as a read would.
func (s *Stream) holdsData(fd int) bool {
	if !s.pty {
		n, err := pipeBuffered(fd)
		return err != nil || n > 0
	}
	return pollReadable(fd)
}

// readBuffered reads what the pipe held when the process was gone, without
// waiting; last reports that the pipe is now empty, so the Stream can end
// with this read. An escaped process that still writes cannot extend the
// drain past drainLeft. Control bypasses the poller's deadline, which
// processGone left expired.
func (s *Stream) readBuffered(b []byte) (n int, last bool, err error) {
	left := s.drainLeft.Load()
	if left == 0 {
		return 0, false, io.EOF
	}
	if left > 0 && int64(len(b)) > left {
		b = b[:left]
	}
	rc, err := s.file.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			n, rerr = readFD(int(fd), b)
			if rerr != syscall.EINTR {
				break
			}
		}
		if n > 0 {
			last = int64(n) == left || !s.holdsData(int(fd))
		}
	}); err != nil {
		return 0, false, err
	}
	switch {
	case rerr == syscall.EAGAIN, rerr == nil && n == 0:
		return 0, false, io.EOF
	case rerr != nil:
		return 0, false, os.NewSyscallError("read", rerr)
	}
	if left > 0 {
		s.drainLeft.Add(-int64(n))
	}
	return n, last, nil
}
