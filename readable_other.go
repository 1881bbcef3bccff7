//go:build !linux

package netrunner

import "os"

// readableWait: without Linux's epoll set of this package's, a stderr
// tail's drainer starts with the process (see readable_linux.go).
type readableWait struct{}

func onReadable(_ *os.File, start func(ended bool)) *readableWait {
	go start(false)
	return nil
}

func onReadableFD(_ int, start func(ended bool)) *readableWait {
	go start(false)
	return nil
}

func (*readableWait) cancel() bool { return false }
