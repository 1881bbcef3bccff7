package netrunner

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// past is a deadline that has always expired; setting it wakes a parked
// reader or writer at once.
var past = time.Unix(1, 0)

// A ctxWatch ties the reads (or the writes) of one file to the last
// cancellable context they were given: when that context ends, the file's
// deadline expires, and the poller wakes a parked operation with
// os.ErrDeadlineExceeded. Callers pass the same context call after call, so
// one registration serves them all: one per call would allocate on every
// chunk. A context that can never end costs nothing.
type ctxWatch struct {
	setDeadline func(time.Time) error
	keepExpired func() bool // true: leave an expired deadline for another waker

	mu       sync.Mutex
	done     <-chan struct{} // identifies the context: same channel, same end
	stop     func() bool
	fired    chan struct{}
	watching atomic.Pointer[<-chan struct{}] // a copy of done, read without mu
}

func newCtxWatch(f *os.File, write bool, keepExpired func() bool) *ctxWatch {
	w := &ctxWatch{setDeadline: f.SetReadDeadline, keepExpired: keepExpired}
	if write {
		w.setDeadline = f.SetWriteDeadline
	}
	return w
}

// watch makes sure an operation under ctx ends when ctx does.
func (w *ctxWatch) watch(ctx context.Context) {
	done := ctx.Done()
	d := w.watching.Load()
	if done == nil {
		if d != nil {
			w.unwatch() // a deadline the last context expired must not linger
		}
		return
	}
	if d != nil && *d == done {
		return // the same context as last time: already watched
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if done == w.done {
		return
	}
	w.unwatchLocked()
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		w.setDeadline(past)
		close(fired)
	})
	w.done, w.stop, w.fired = done, stop, fired
	watched := done // its own variable, so only this path allocates it
	w.watching.Store(&watched)
}

// unwatch drops the watch, and the deadline it may have set, so the next
// context starts afresh; also to release the context when the file is done.
func (w *ctxWatch) unwatch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unwatchLocked()
}

func (w *ctxWatch) unwatchLocked() {
	if w.stop == nil {
		return
	}
	if !w.stop() {
		<-w.fired
		if w.keepExpired == nil || !w.keepExpired() {
			w.setDeadline(time.Time{})
		}
	}
	w.done, w.stop, w.fired = nil, nil, nil
	w.watching.Store(nil)
}

// ctxErr turns the poller's deadline error into the context's error when the
// watched context is what expired the deadline.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
