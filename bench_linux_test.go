package netrunner

import (
	"os"

	"golang.org/x/sys/unix"
)

// tunedPipe makes the tuned reference's pipe: raised to benchTunedPipe, the
// read end nonblocking, so the poller owns it.
func tunedPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	if _, err := unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, benchTunedPipe); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, err
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "tuned-r"), os.NewFile(uintptr(fds[1]), "tuned-w"), nil
}
