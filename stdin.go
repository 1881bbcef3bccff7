package netrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// stdin is the write side of a child, the twin of Stream: what
// Process.Write and CloseStdin act on, and the copy of Cmd.Stdin.
type stdin struct {
	name     string
	owned    bool     // the caller writes it (not a copy of Cmd.Stdin)
	terminal terminal // the child's PTY, told when input ends
	done     <-chan struct{}
	sem      chan struct{} // one write at a time
	shut     sync.Once
	closed   atomic.Bool
	last     atomic.Int32 // the last byte written; -1: none yet

	bytes, writes *atomic.Int64 // the stage's counters

	mu      sync.Mutex
	pipe    lazyPipe  // none when the child's stdin is not a pipe of ours; wrapped by the first write
	watch   *ctxWatch // made with the wrapping
	readErr error     // reading Cmd.Stdin failed
}

func newStdin(name string, pipe lazyPipe, owned bool, term terminal, done <-chan struct{}, bytes, writes *atomic.Int64) *stdin {
	in := &stdin{
		name:     name,
		owned:    (pipe.unwrapped || pipe.file != nil) && owned,
		terminal: term,
		done:     done,
		sem:      make(chan struct{}, 1),
		bytes:    bytes,
		writes:   writes,
		pipe:     pipe,
	}
	in.last.Store(-1)
	return in
}

// file returns the pipe, wrapped, with the watch its writes need; nil once
// it is closed.
func (in *stdin) file() (*os.File, *ctxWatch) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.watch == nil && (in.pipe.unwrapped || in.pipe.file != nil) {
		in.watch = newCtxWatch(in.pipe.wrap("stdin"), true, nil)
	}
	return in.pipe.file, in.watch
}

// errStdinNotPipe is what Write returns when the child's stdin is not the
// caller's to write.
var errStdinNotPipe = fmt.Errorf("stdin comes from Cmd.Stdin: %w", ErrStdinClosed)

func (in *stdin) write(ctx context.Context, b []byte) (int, error) {
	if !in.owned {
		return 0, commandError(in.name, "write", errStdinNotPipe)
	}
	select {
	case in.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-in.sem }()
	if in.closed.Load() {
		return 0, commandError(in.name, "write", ErrStdinClosed)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, watch := in.file()
	if f == nil {
		return 0, commandError(in.name, "write", ErrStdinClosed)
	}
	watch.watch(ctx)
	n, err := f.Write(b)
	err = ctxErr(ctx, err)
	in.count(b[:n])
	switch {
	case err == nil:
	case ctx.Err() != nil && err == ctx.Err():
	case errors.Is(err, os.ErrClosed):
		err = commandError(in.name, "write", ErrStdinClosed)
	default:
		err = commandError(in.name, "write", err)
	}
	return n, err
}

// count counts written, the bytes that reached the child.
func (in *stdin) count(written []byte) {
	if n := len(written); n > 0 {
		in.last.Store(int32(written[n-1]))
		in.bytes.Add(int64(n))
		in.writes.Add(1)
	}
}

// close ends the writing side, once; on a terminal, eof says to tell the
// child its input is over. Close waits for a write in progress, so the
// end of input comes after the last byte written.
func (in *stdin) close(eof bool) {
	in.shut.Do(func() {
		in.closed.Store(true)
		in.mu.Lock()
		in.pipe.close()
		in.pipe = lazyPipe{}
		watch := in.watch
		in.mu.Unlock()
		if watch != nil {
			watch.unwatch()
		}
		if eof && in.terminal != nil {
			in.terminal.endInput(in.last.Load(), in.done)
		}
	})
}

// copyFrom copies Cmd.Stdin into the child with backpressure: each write
// waits for the child to read. A child that exits or stops reading, or
// CloseStdin, ends the copy quietly. A terminal is told the input ended,
// since closing our end would not close it.
func (in *stdin) copyFrom(r io.Reader) {
	f, _ := in.file()
	if f == nil {
		return
	}
	buf := make([]byte, 32<<10)
	for !in.closed.Load() {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := f.Write(buf[:n])
			in.count(buf[:m])
			if werr != nil {
				if !isQuietPipeEnd(werr) {
					in.setReadErr(werr)
				}
				in.close(false)
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				in.setReadErr(err)
			}
			break
		}
	}
	in.close(true)
}

func (in *stdin) setReadErr(err error) {
	in.mu.Lock()
	in.readErr = err
	in.mu.Unlock()
}

// copyErr is why the copy of Cmd.Stdin failed, if it did.
func (in *stdin) copyErr() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.readErr
}

// isQuietPipeEnd reports errors that only mean the other end went away.
func isQuietPipeEnd(err error) bool {
	return isBrokenPipe(err) || errors.Is(err, os.ErrClosed)
}
