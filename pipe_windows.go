package netrunner

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/windows"

	"github.com/netrunner-go/netrunner/internal/winpipe"
)

// The pipes between us and a child, on Windows; pipe_linux.go,
// pipe_unix.go and fdfile_unix.go have the same functions.

// newPipe: see fdfile_unix.go. On Windows the parent's end is a named pipe
// opened for overlapped I/O, which os.NewFile hands to the runtime poller
// (I/O completion ports), so deadlines, and through them Next(ctx), work as
// on Linux; the child's end is synchronous. Neither is inheritable: the
// spawn duplicates the child's end for that child alone. size is refused
// before this (PipeSize is Linux only); the pipe holds 64 KiB, as a Linux
// pipe does by default.
func newPipe(name string, parentReads bool, size int) (parent *os.File, child int, err error) {
	p, c, err := newPipeFDs(parentReads, size)
	if err != nil {
		return nil, -1, err
	}
	return os.NewFile(uintptr(p), name), c, nil
}

// newPipeFDs is newPipe with the parent's end not yet wrapped: see
// fdfile_unix.go.
func newPipeFDs(parentReads bool, size int) (parent, child int, err error) {
	p, c, err := winpipe.New(parentReads, size)
	if err != nil {
		return -1, -1, err
	}
	return int(p), int(c), nil
}

// pipeCloexec makes a pipe between two children (a pipeline's stages): an
// anonymous pipe, synchronous at both ends, not inheritable.
func pipeCloexec(fds *[2]int) error {
	var r, w windows.Handle
	if err := windows.CreatePipe(&r, &w, nil, winpipe.DefaultSize); err != nil {
		return os.NewSyscallError("CreatePipe", err)
	}
	fds[0], fds[1] = int(r), int(w)
	return nil
}

// pipeBuffered returns how many bytes a pipe holds.
func pipeBuffered(fd int) (int, error) { return winpipe.Buffered(windows.Handle(fd)) }

// readFD reads what a pipe holds without waiting: syscall.EAGAIN when it is
// empty, (0, nil) at its end. Only drain.go's readBuffered calls it, on the
// parent's end of a pipe, which is overlapped: a plain ReadFile would be
// wrong there.
func readFD(fd int, b []byte) (int, error) {
	n, err := winpipe.ReadBuffered(windows.Handle(fd), b)
	if err == winpipe.ErrEmpty {
		return 0, syscall.EAGAIN
	}
	return n, err
}

func setPipeSize(int, int) error { return fmt.Errorf("PipeSize: %w", ErrUnsupported) }

func growPipe(int) {}

// isBrokenPipe reports the errors a write gets once the reader is gone.
func isBrokenPipe(err error) bool {
	return errors.Is(err, windows.ERROR_BROKEN_PIPE) || errors.Is(err, windows.ERROR_NO_DATA)
}
