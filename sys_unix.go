//go:build unix

package netrunner

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The descriptor calls the platform-neutral files make, by their Unix names.
// sys_windows.go has the same functions over Windows handles.

func closeFD(fd int) error { return unix.Close(fd) }

// setNonblock makes a pipe end just made nonblocking. One F_SETFL, without
// reading the flags first: a fresh pipe has no other status flag to keep.
func setNonblock(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_NONBLOCK)
	return os.NewSyscallError("fcntl", err)
}

func readFD(fd int, b []byte) (int, error) { return unix.Read(fd, b) }

// isBrokenPipe reports the error a write gets once the reader is gone.
func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

// sigCONT follows SIGTERM when a group is stopped, so that a stopped member
// can act on the TERM.
const sigCONT = syscall.SIGCONT

// pollReadable reports whether a read of fd would find data now; on a
// terminal, poll(2) first moves data on its way into the line discipline's
// buffer, as a read would.
func pollReadable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || (n > 0 && fds[0].Revents&unix.POLLIN != 0)
	}
}

// openDevNull opens the null device for a child's stdin, stdout or stderr.
func openDevNull() (int, error) {
	fd, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	return fd, nil
}

// exitOf is how a reaped child ended, from its wait status and rusage.
func exitOf(ws syscall.WaitStatus, ru *syscall.Rusage) exitStatus {
	e := exitStatus{
		code:   ws.ExitStatus(),
		user:   time.Duration(ru.Utime.Nano()),
		system: time.Duration(ru.Stime.Nano()),
		maxRSS: maxRSSBytes(ru),
	}
	if ws.Signaled() {
		e.code, e.signal = -1, ws.Signal()
	}
	return e
}
