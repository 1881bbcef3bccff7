package netrunner

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// newPipe makes a pipe for one of the child's standard streams and returns
// the parent's end, wrapped, and the child's end, a raw fd that only lives
// until the spawn; parentReads says which end the parent keeps.
//
// The parent's end is nonblocking and wrapped by os.NewFile, which registers
// it with the runtime poller: a goroutine waiting on it is parked by epoll or
// kqueue instead of holding an OS thread, and deadlines interrupt it. The
// child's end stays an ordinary blocking descriptor, as programs expect.
// Both are close-on-exec so that no other child inherits them; the spawn
// dup2s the child's end onto 0, 1 or 2, which clears the flag there.
func newPipe(name string, parentReads bool, size int) (parent *os.File, child int, err error) {
	var fds [2]int
	if err := pipeCloexec(&fds); err != nil {
		return nil, -1, err
	}
	parentFD, childFD := fds[0], fds[1]
	if !parentReads {
		parentFD, childFD = fds[1], fds[0]
	}
	if size > 0 {
		err = setPipeSize(parentFD, size)
	}
	if err == nil {
		err = os.NewSyscallError("fcntl", unix.SetNonblock(parentFD, true))
	}
	if err != nil {
		unix.Close(parentFD)
		unix.Close(childFD)
		return nil, -1, err
	}
	return os.NewFile(uintptr(parentFD), name), childFD, nil
}

// past is a deadline that has always expired; setting it wakes a parked
// reader or writer at once.
var past = time.Unix(1, 0)

// withContext runs io, a read (or write) on f, so that it returns promptly
// with ctx.Err() when ctx ends: ending the context sets an expired deadline,
// which the poller turns into os.ErrDeadlineExceeded. The deadline is
// cleared again, so f stays usable. A context that can never end costs
// nothing here, which keeps the common path free of allocations.
func withContext(ctx context.Context, f *os.File, write bool, io func() (int, error)) (int, error) {
	if ctx.Done() == nil {
		return io()
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	setDeadline := f.SetReadDeadline
	if write {
		setDeadline = f.SetWriteDeadline
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		setDeadline(past)
		close(fired)
	})
	n, err := io()
	if !stop() {
		<-fired
		setDeadline(time.Time{})
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = ctx.Err()
		}
	}
	return n, err
}
