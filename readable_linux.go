package netrunner

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A running process needs no goroutine of its own while it runs and writes
// nothing to its stderr tail (StderrTail), which is what most processes do
// most of the time. So one goroutine waits for all of them, on an epoll set
// of this package's that the runtime poller watches: a process's
// supervision starts once its pidfd says it has exited, and its stderr
// tail's drainer once its stderr turns readable (data, or the end of the
// pipe). The set is made once, like
// the poller's own; the goroutine ends when nothing has been waited for
// during lingerIdle. A pipe that ends without data (the common exit) needs
// no drainer at all: start learns it and returns at once.
var readableWaits struct {
	mu      sync.Mutex
	ep      *os.File // the epoll set, never closed once made
	epfd    int
	rc      syscall.RawConn
	waits   map[uint64]*readableWait
	nextID  uint64
	running bool        // the waiting goroutine exists
	idle    *time.Timer // ends the goroutine once nothing is waited for
}

// lingerIdle is how long the waiting goroutine stays with nothing to wait
// for, so that processes started one after the other do not each start one.
const lingerIdle = 100 * time.Millisecond

// A readableWait is one file waited for.
type readableWait struct {
	id    uint64
	start func(ended bool)
}

// onReadable calls start once f is readable, or at once when f cannot be
// waited for: in a goroutine of its own, or, with ended true, on the
// waiting goroutine, when f is a pipe at its end with nothing left to read
// (start must then return at once). The caller keeps f open until cancel
// reports that start will not run, or start ran.
func onReadable(f *os.File, start func(ended bool)) *readableWait {
	var w *readableWait
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { w = onReadableFD(int(fd), start) })
	}
	if err != nil {
		go start(false)
		return nil
	}
	return w
}

// onReadableFD is onReadable for a descriptor that is not wrapped by an
// os.File.
func onReadableFD(fd int, start func(ended bool)) *readableWait {
	w := &readableWait{start: start}
	if err := w.register(fd); err != nil {
		go start(false)
		return nil
	}
	return w
}

func (w *readableWait) register(fd int) error {
	rw := &readableWaits
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.ep == nil {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return err
		}
		ep := os.NewFile(uintptr(fd), "epoll")
		rc, err := ep.SyscallConn()
		if err != nil {
			ep.Close()
			return err
		}
		rw.ep, rw.epfd, rw.rc, rw.waits = ep, fd, rc, map[uint64]*readableWait{}
		rw.idle = time.AfterFunc(time.Hour, endIdleWait)
		rw.idle.Stop()
	}
	w.id = rw.nextID
	rw.nextID++
	// One-shot: once readable, the drainer reads it on the runtime's poller.
	// The registration goes when the descriptor is closed; its id then
	// matches nothing.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(uint32(w.id)), Pad: int32(uint32(w.id >> 32))}
	if err := unix.EpollCtl(rw.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	rw.waits[w.id] = w
	rw.idle.Stop()
	if !rw.running {
		rw.running = true
		go waitReadable()
	}
	return nil
}

// cancel stops the wait; false means start ran or runs (or w is nil: it
// ran at once).
func (w *readableWait) cancel() bool {
	if w == nil {
		return false
	}
	rw := &readableWaits
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.waits[w.id] != w {
		return false
	}
	delete(rw.waits, w.id)
	if len(rw.waits) == 0 {
		rw.idle.Reset(lingerIdle)
	}
	return true
}

// endIdleWait wakes the waiting goroutine to end, if it still has nothing
// to wait for.
func endIdleWait() {
	rw := &readableWaits
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.running && len(rw.waits) == 0 {
		rw.ep.SetReadDeadline(past)
	}
}

// waitReadable is the waiting goroutine.
func waitReadable() {
	rw := &readableWaits
	var events [64]unix.EpollEvent
	var n int
	ready := func(fd uintptr) bool {
		var err error
		for n, err = unix.EpollWait(int(fd), events[:], 0); err == unix.EINTR; {
			n, err = unix.EpollWait(int(fd), events[:], 0)
		}
		return n > 0 || err != nil
	}
	var starts, ends []func(bool)
	for {
		n = 0
		err := rw.rc.Read(ready)
		starts, ends = starts[:0], ends[:0]
		rw.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if w := rw.waits[id]; w != nil {
				delete(rw.waits, id)
				// Hung up with nothing to read: every writer is gone
				// and none can come back.
				if ev.Events&(unix.EPOLLIN|unix.EPOLLERR) == 0 {
					ends = append(ends, w.start)
				} else {
					starts = append(starts, w.start)
				}
			}
		}
		if len(starts)+len(ends) > 0 && len(rw.waits) == 0 {
			rw.idle.Reset(lingerIdle)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			rw.ep.SetReadDeadline(time.Time{})
			if len(rw.waits) == 0 {
				rw.running = false
				rw.mu.Unlock()
				return
			}
		}
		rw.mu.Unlock()
		for _, end := range ends {
			end(true)
		}
		for _, start := range starts {
			go start(false)
		}
	}
}
