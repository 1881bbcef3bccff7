//go:build unix

package netrunner

import "os"

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
	parentFD, child, err := newPipeFDs(parentReads, size)
	if err != nil {
		return nil, -1, err
	}
	return os.NewFile(uintptr(parentFD), name), child, nil
}

// newPipeFDs is newPipe with the parent's end not yet wrapped: for a pipe
// that may never be used (see lazyPipe), os.NewFile and its poller
// registration wait until it is.
func newPipeFDs(parentReads bool, size int) (parent, child int, err error) {
	var fds [2]int
	if err := pipeCloexec(&fds); err != nil {
		return -1, -1, err
	}
	parentFD, childFD := fds[0], fds[1]
	if !parentReads {
		parentFD, childFD = fds[1], fds[0]
	}
	if size > 0 {
		err = setPipeSize(parentFD, size)
	}
	if err == nil {
		err = setNonblock(parentFD)
	}
	if err != nil {
		closeFD(parentFD)
		closeFD(childFD)
		return -1, -1, err
	}
	return parentFD, childFD, nil
}
