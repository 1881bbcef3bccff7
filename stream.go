package netrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// A Stream is one output pipe of a running process: its stdout, or its stderr
// with StderrStream.
//
// Nothing is read from the kernel pipe until the consumer asks: Next, Read
// and WriteTo read when called, and Request grants credit for chunks read
// ahead onto C. A consumer that stops asking leaves the data in the pipe, the
// child blocks in write(2) once the pipe is full, and memory stays bounded by
// the outstanding demand times ChunkSize.
//
// The end of a Stream is the end of its pipe: every writer closed it. The
// pipe also ends once the process has exited and every process in its group
// is gone; what is still buffered is then delivered and the Stream ends, so
// a descendant that escaped the group (setsid) and still holds the pipe
// cannot hang the reader. The exit status comes from Process.Wait.
//
// A Stream is safe for concurrent use; reads are serialised, so each chunk
// goes to exactly one caller.
type Stream struct {
	name      string // e.g. `"cat" stdout`, for errors
	file      *os.File
	chunkSize int
	pty       bool // a terminal master reports the end as EIO

	// sem admits one reader at a time. It is a channel rather than a
	// mutex so that a caller waiting for its turn still honours its context.
	sem  chan struct{}
	next []byte // Next's buffer, reused: its result is valid until the next call

	// drainOnly is set once the process and its group are gone: reads then
	// take at most drainLeft more bytes, what the pipe held at that moment
	// (-1: unknown, until the pipe is empty), without waiting.
	drainLeft atomic.Int64
	// take what is buffered without waiting, and an empty pipe is the end.
	drainOnly atomic.Bool

	bytes, reads *atomic.Int64 // the process's Stats counters

	// A pipe starts at the kernel's default size. Once reads keep coming
	// back full, the producer is outrunning the pipe, and a bigger pipe
	// lets each wakeup move more; see growPipe. canGrow and fullReads
	// belong to the reader holding sem.
	canGrow   bool
	fullReads int

	watch *ctxWatch // ends a parked read when its context ends

	hasEnded    atomic.Bool // end is set
	mu          sync.Mutex
	end         error // sticky: io.EOF, a read error, or errStreamClosed
	credit      int   // see demand.go
	pumping     bool
	demandEnded bool
	c           chan []byte
	wake        chan struct{}
	closed      chan struct{}
	closeOnce   sync.Once
	fileOnce    sync.Once
}

// chunksAhead is how many read-ahead chunks C holds before the pump waits
// for the receiver; demand beyond it is read as the receiver drains C.
const chunksAhead = 16

func newStream(name string, f *os.File, chunkSize int, pty bool, bytes, reads *atomic.Int64) *Stream {
	s := &Stream{
		name:      name,
		file:      f,
		chunkSize: chunkSize,
		pty:       pty,
		sem:       make(chan struct{}, 1),
		bytes:     bytes,
		reads:     reads,
		c:         make(chan []byte, chunksAhead),
		wake:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	// processGone's expired deadline must survive a context change.
	s.watch = newCtxWatch(f, false, s.drainOnly.Load)
	return s
}

// Next reads the next chunk, at most ChunkSize bytes, waiting until the
// child writes. It returns io.EOF at the end of the Stream. The slice is
// valid until the next call of Next. When ctx ends first, Next returns its
// error promptly and the Stream stays usable.
func (s *Stream) Next(ctx context.Context) ([]byte, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	if s.next == nil {
		s.next = make([]byte, s.chunkSize)
	}
	n, err := s.readLocked(ctx, s.next)
	return s.next[:n], err
}

// Read implements io.Reader: it reads up to len(p) bytes, waiting until the
// child writes some.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.read(context.Background(), p)
}

// WriteTo implements io.WriterTo: it copies the Stream to w until the end,
// reading one chunk at a time, so w's pace is the child's pace.
//
// When w is a pipe, socket or file (an *os.File or net.Conn), the data
// moves with splice(2) on Linux, without passing through user space.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	total, ok, err := s.spliceTo(w)
	if ok && err != errDrainOnly {
		return total, err
	}
	buf := make([]byte, s.chunkSize)
	for {
		n, err := s.read(context.Background(), buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Err returns why the Stream ended: nil after a clean end (and while it is
// still open), otherwise the read error or the error of Close.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == io.EOF {
		return nil
	}
	return s.end
}

// Close stops reading: the pipe is closed and unread data is dropped (a
// child still writing gets EPIPE). Blocked readers return an error wrapping
// os.ErrClosed, C is closed. Close is idempotent.
func (s *Stream) Close() error {
	s.setEnd(fmt.Errorf("netrunner: %s: %w", s.name, os.ErrClosed))
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// setEnd records the first end of the Stream, releases the pipe and stops
// read-ahead.
func (s *Stream) setEnd(err error) {
	s.mu.Lock()
	if s.end == nil {
		s.end = err
		s.hasEnded.Store(true)
	}
	s.mu.Unlock()
	s.fileOnce.Do(func() { s.file.Close() })
	s.watch.unwatch()
	s.endDemand()
}

func (s *Stream) ended() error {
	if !s.hasEnded.Load() {
		return nil // the common case, without the lock
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// processGone switches the Stream to draining: see drainOnly. A reader
// parked on the pipe is woken by an expired deadline.
func (s *Stream) processGone() {
	left := int64(-1)
	if rc, err := s.file.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if n, err := pipeBuffered(int(fd)); err == nil {
				left = int64(n)
			}
		})
	}
	s.drainLeft.Store(left)
	s.drainOnly.Store(true)
	s.file.SetReadDeadline(past)
}

// acquire waits for the turn to read; release ends it.
func (s *Stream) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Stream) release() { <-s.sem }

// read reads the pipe once its turn comes.
func (s *Stream) read(ctx context.Context, b []byte) (int, error) {
	if err := s.acquire(ctx); err != nil {
		return 0, err
	}
	defer s.release()
	return s.readLocked(ctx, b)
}

// readLocked is the one place that reads the pipe.
func (s *Stream) readLocked(ctx context.Context, b []byte) (int, error) {
	for {
		if err := s.ended(); err != nil {
			return 0, err
		}
		var n int
		var err error
		if s.drainOnly.Load() {
			n, err = s.readBuffered(b)
		} else if err = ctx.Err(); err == nil {
			s.watch.watch(ctx)
			n, err = s.file.Read(b)
			err = ctxErr(ctx, err)
		}
		if n > 0 {
			s.bytes.Add(int64(n))
			s.reads.Add(1)
			s.noteFullness(n == len(b))
			return n, nil
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && s.drainOnly.Load():
			continue // woken by processGone
		case ctx.Err() != nil && err == ctx.Err():
			return 0, err // the Stream stays usable
		case err == io.EOF, s.pty && errors.Is(err, syscall.EIO):
			err = io.EOF
		case errors.Is(err, os.ErrClosed):
			return 0, s.ended() // Close raced the read; report it as Close's error
		default:
			err = fmt.Errorf("netrunner: %s: %w", s.name, err)
		}
		s.setEnd(err)
		return 0, err
	}
}

// hotReads is how many full reads in a row make a stream hot.
const hotReads = 4

func (s *Stream) noteFullness(full bool) {
	if !s.canGrow {
		return
	}
	if !full {
		s.fullReads = 0
		return
	}
	if s.fullReads++; s.fullReads >= hotReads {
		s.canGrow = false
		if rc, err := s.file.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { growPipe(int(fd)) })
		}
	}
}

// readBuffered reads what the pipe held when the process was gone, without
// waiting; then the Stream ends, even if a process that escaped the group
// still writes. Control bypasses the poller's deadline, which processGone
// left expired.
func (s *Stream) readBuffered(b []byte) (int, error) {
	left := s.drainLeft.Load()
	if left == 0 {
		return 0, io.EOF
	}
	if left > 0 && int64(len(b)) > left {
		b = b[:left]
	}
	rc, err := s.file.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			n, rerr = readFD(int(fd), b)
			if rerr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == syscall.EAGAIN, rerr == nil && n == 0:
		return 0, io.EOF
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	}
	if left > 0 {
		s.drainLeft.Add(-int64(n))
	}
	return n, nil
}
