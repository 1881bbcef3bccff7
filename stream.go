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
// A Stream that nobody reads needs no care: once the process and its group
// are gone and the pipe is empty, the Stream ends by itself and releases its
// descriptor, its read-ahead goroutine and any context it was read under,
// without waiting for the garbage collector. A Stream whose pipe still holds
// data keeps it, and its descriptor, until it is read to the end or closed:
// like an http.Response.Body, close a Stream you stop reading early.
//
// A Stream is safe for concurrent use; reads are serialised, so each chunk
// goes to exactly one caller. Next's chunk is valid only until its next
// call, so it serves one consuming goroutine at a time: several consumers
// share a Stream through Read (each with its own buffer) or through C. A
// Next or a Request waiting for output holds no chunk buffer.
type Stream struct {
	name      string // e.g. "cat: stdout", for errors
	file      *os.File
	ctx       context.Context // the process's: WriteTo stops delivering when it ends
	chunkSize int
	pty       bool // a terminal master reports the end as EIO

	// sem admits one reader at a time. It is a channel rather than a
	// mutex so that a caller waiting for its turn still honours its context.
	sem     chan struct{}
	nextBuf *[]byte // Next's buffer while data flows (see chunkbuf.go): its result is valid until the next call
	rd      rawRead

	// drainOnly is set once the process and its group are gone: reads then
	// take what is buffered without waiting, at most drainLeft more bytes
	// (see processGone), and an empty pipe is the end.
	drainLeft atomic.Int64
	drainOnly atomic.Bool
	gone      atomic.Bool // processGone has run

	bytes, reads *atomic.Int64 // the process's Stats counters

	// fed, for a remote process's Stream, is closed once the bridge that
	// feeds the pipe from the SSH channel has closed it: only then does the
	// pipe hold all there is (see processGone).
	fed <-chan struct{}

	// A pipe starts at the kernel's default size. Once reads keep coming
	// back full, the producer is outrunning the pipe, and a bigger pipe
	// lets each wakeup move more; see growPipe. canGrow and fullReads
	// belong to the reader holding sem.
	canGrow   bool
	fullReads int

	watch *ctxWatch // ends a parked read when its context ends

	hasEnded  atomic.Bool // end is set
	mu        sync.Mutex
	end       error // sticky: io.EOF, a read error, or errStreamClosed
	demand          // read-ahead for Request and C: demand.go
	closed    chan struct{}
	closeOnce sync.Once
	fileOnce  sync.Once
}

func newStream(ctx context.Context, name string, f *os.File, chunkSize int, pty bool, bytes, reads *atomic.Int64) *Stream {
	s := &Stream{
		name:      name,
		file:      f,
		ctx:       ctx,
		chunkSize: chunkSize,
		pty:       pty,
		sem:       make(chan struct{}, 1),
		bytes:     bytes,
		reads:     reads,
		closed:    make(chan struct{}),
	}
	// processGone's expired deadline must survive a context change.
	s.watch = newCtxWatch(f, false, s.drainOnly.Load)
	return s
}

// Next reads the next chunk, at most ChunkSize bytes, waiting until the
// child writes. It returns io.EOF at the end of the Stream. When ctx ends
// first, Next returns its error promptly and the Stream stays usable; a ctx
// that is already done gets its error, not what the pipe still holds.
//
// The slice is Next's own buffer, valid until the next call of Next on this
// Stream by any goroutine (which may hand the buffer to another Stream
// while it waits): Next serves one consuming goroutine at a time.
// Goroutines that consume one Stream together use Read, each with its own
// buffer, or Request and C, where each chunk is the receiver's.
func (s *Stream) Next(ctx context.Context) ([]byte, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	var b []byte
	if s.nextBuf != nil {
		b = (*s.nextBuf)[:s.chunkSize] // its size class may be larger
	}
	b, n, err := s.readLocked(ctx, b, bufPooled)
	return b[:n], err
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
// WriteTo reads under the context the process was started with: once that
// context is done, WriteTo stops delivering, even what the pipe still holds,
// and returns an error wrapping the context's error. The Stream stays open.
//
// When w is a pipe, socket or file (an *os.File or net.Conn), the data
// moves with splice(2) on Linux, without passing through user space; a
// destination that splice refuses gets the copying loop instead.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	n, err := s.writeTo(s.ctx, w)
	if cerr := s.ctx.Err(); cerr != nil && err == cerr {
		err = fmt.Errorf("netrunner: %s: %w", s.name, err)
	}
	return n, err
}

// writeTo is WriteTo under ctx.
func (s *Stream) writeTo(ctx context.Context, w io.Writer) (int64, error) {
	total, ok, err := s.spliceTo(ctx, w)
	if ok {
		return total, err
	}
	buf := make([]byte, s.chunkSize)
	for {
		n, err := s.read(ctx, buf)
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
// child still writing gets EPIPE; on a PTY, closing the terminal hangs it
// up, and its session gets SIGHUP). Blocked readers return an error
// wrapping os.ErrClosed, C is closed. Close is idempotent.
func (s *Stream) Close() error {
	s.setEnd(fmt.Errorf("netrunner: %s: %w", s.name, os.ErrClosed))
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// setEnd records the first end of the Stream, releases the pipe and stops
// read-ahead.
func (s *Stream) setEnd(err error) {
	s.recordEnd(err)
	s.closeFile()
}

// recordEnd records the first end of the Stream, releases the context it
// was read under and stops read-ahead.
func (s *Stream) recordEnd(err error) {
	s.mu.Lock()
	if s.end == nil {
		s.end = err
		s.hasEnded.Store(true)
	}
	s.mu.Unlock()
	s.watch.unwatch()
	s.endDemand()
}

func (s *Stream) closeFile() { s.fileOnce.Do(func() { s.file.Close() }) }

func (s *Stream) ended() error {
	if !s.hasEnded.Load() {
		return nil // the common case, without the lock
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
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

// read reads the pipe into b once its turn comes.
func (s *Stream) read(ctx context.Context, b []byte) (int, error) {
	if err := s.acquire(ctx); err != nil {
		return 0, err
	}
	defer s.release()
	_, n, err := s.readLocked(ctx, b, bufCaller)
	return n, err
}

// readLocked is the one place that reads the pipe. b is the buffer to read
// into, or nil to take one from src once there is data: it returns the
// buffer it read into (nil when it took none).
func (s *Stream) readLocked(ctx context.Context, b []byte, src bufSource) ([]byte, int, error) {
	for {
		if err := s.ended(); err != nil {
			return b, 0, err
		}
		// Once ctx is done, nothing more is delivered, not even what the
		// pipe still holds.
		if err := ctx.Err(); err != nil {
			return b, 0, err
		}
		var n int
		var err error
		last := false
		if s.drainOnly.Load() {
			if b == nil {
				b = s.takeBuf(src)
			}
			n, last, err = s.readBuffered(b)
		} else {
			s.watch.watch(ctx)
			b, n, err = s.readFile(b, src)
			err = ctxErr(ctx, err)
		}
		if n > 0 {
			s.bytes.Add(int64(n))
			s.reads.Add(1)
			s.noteFullness(n == len(b))
			if last {
				s.setEnd(io.EOF) // release the pipe now, not at the next read
			}
			return b, n, nil
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && s.drainOnly.Load():
			continue // woken by processGone
		case ctx.Err() != nil && err == ctx.Err():
			return b, 0, err // the Stream stays usable
		case s.pty && errors.Is(err, syscall.EIO):
			// Every user of the terminal closed it, but its session
			// leader may not have exited yet: closing the master now
			// would hang the terminal up and kill the leader with
			// SIGHUP. processGone closes it.
			s.recordEnd(io.EOF)
			if s.gone.Load() {
				s.closeFile()
			}
			return b, 0, io.EOF
		case err == io.EOF:
		case errors.Is(err, os.ErrClosed):
			return b, 0, s.ended() // Close raced the read; report it as Close's error
		default:
			err = fmt.Errorf("netrunner: %s: %w", s.name, err)
		}
		s.setEnd(err)
		return b, 0, err
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
