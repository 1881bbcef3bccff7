package netrunner

import (
	"os"
	"syscall"
)

// The calls of sys_unix.go over Windows handles, which syscall passes as
// uintptr-sized values; an int holds them.

func closeFD(fd int) error { return syscall.CloseHandle(syscall.Handle(fd)) }

// sigCONT has no Windows counterpart; signal 0 does nothing.
const sigCONT syscall.Signal = 0

// pollReadable is only asked of terminals, which Windows does not have here.
func pollReadable(int) bool { return false }

func openDevNull() (int, error) {
	h, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	return int(h), nil
}
