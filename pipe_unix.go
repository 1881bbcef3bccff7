//go:build unix && !linux

package netrunner

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The pipes between us and a child, on the Unix systems other than Linux,
// which cannot resize them; pipe_linux.go has the same functions.

func setPipeSize(fd, size int) error { return nil }

// pipeCloexec makes a pipe whose ends no other child inherits. darwin lacks
// pipe2, so the flag is set under ForkLock, as package syscall does.
func pipeCloexec(fds *[2]int) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := syscall.Pipe(fds[:]); err != nil {
		return os.NewSyscallError("pipe", err)
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return nil
}

func growPipe(fd int) {}

// fionread is FIONREAD, _IOR('f', 127, int), on darwin and the BSDs; x/sys
// does not name it there.
const fionread = 0x4004667f

// pipeBuffered returns how many bytes a pipe holds.
func pipeBuffered(fd int) (int, error) { return unix.IoctlGetInt(fd, fionread) }
