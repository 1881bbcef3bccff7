package netrunner

import (
	"context"
	"errors"
	"io"
	"iter"
	"slices"
)

// Result is what Run collected from a process.
type Result struct {
	Stdout   []byte // what was read from stdout, at most MaxOutput bytes when that is set
	Stderr   []byte // StderrTail: the tail; StderrStream: all of it (bounded by MaxOutput)
	ExitCode int    // as Process.ExitCode: -1 if a signal ended the process
	Stats    Stats  // the process's counters once it was reaped
}

// Run starts the command, reads all of its stdout (and, with StderrStream,
// its stderr), and waits for it. The child's stdin is empty unless
// Cmd.Stdin is set.
//
// Run returns a non-nil Result whenever the process started, also together
// with an error: an *ExitError, an error wrapping ErrMaxOutput (the
// process was stopped; Stdout holds the first MaxOutput bytes), or one
// matching the context's error when ctx ended the run.
func (c *Cmd) Run(ctx context.Context) (*Result, error) {
	p, err := c.start(ctx, oneShot)
	if err != nil {
		return nil, err
	}
	defer p.Stdout.Close()
	var stderr []byte
	stderrDone := make(chan struct{})
	if p.Stderr != nil {
		go func() {
			defer close(stderrDone)
			defer p.Stderr.Close()
			stderr, _, _ = readAll(p.Stderr, c.MaxOutput, true)
		}()
	} else {
		close(stderrDone)
	}

	stdout, over, readErr := readAll(p.Stdout, c.MaxOutput, false)
	if over || readErr != nil {
		// The pipe is closed first: a child still writing gets EPIPE at
		// once, even one that ignores SIGTERM, instead of lasting until
		// the SIGKILL after KillTimeout.
		p.Stdout.Close()
		p.Stop(context.Background())
	}
	waitErr := p.Wait(context.Background())
	<-stderrDone

	res := &Result{Stdout: stdout, Stderr: stderr, ExitCode: p.ExitCode(), Stats: p.Stats()}
	if t := p.stages[len(p.stages)-1].stderrTail; t != nil {
		res.Stderr = t.bytes()
	}
	switch {
	case over:
		return res, commandErrorf(p.name, "stdout: %w (%d bytes)", ErrMaxOutput, c.MaxOutput)
	case readErr != nil:
		return res, readErr
	}
	return res, waitErr
}

// Output runs the command and returns its stdout, like exec.Cmd.Output;
// see Run for the errors. The output read so far is returned with the error.
func (c *Cmd) Output(ctx context.Context) ([]byte, error) {
	res, err := c.Run(ctx)
	if res == nil {
		return nil, err
	}
	return res.Stdout, err
}

// readAll reads s to its end, keeping at most limit bytes (0: no limit). It
// reports whether the limit was passed; past it, it keeps reading and
// dropping the rest only if drop is set, and stops otherwise.
func readAll(s *Stream, limit int64, drop bool) (b []byte, over bool, err error) {
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(512, len(b)))
		}
		room := b[len(b):cap(b)]
		// One byte past the limit is enough to tell "at" from "over".
		// (limit-len(b) cannot overflow: len(b) <= limit here.)
		if limit > 0 && int64(len(room)) > limit-int64(len(b)) {
			room = room[:limit-int64(len(b))+1]
		}
		n, err := s.Read(room)
		b = b[:len(b)+n]
		if limit > 0 && int64(len(b)) > limit {
			b, over = b[:limit], true
			if !drop {
				return b, true, nil
			}
			_, err = io.Copy(io.Discard, s)
			return b, true, err
		}
		if err == io.EOF {
			return b, false, nil
		}
		if err != nil {
			return b, false, err
		}
	}
}

// Chunks starts the command and yields its stdout chunk by chunk as the
// child writes it; a chunk is valid until the next iteration. It waits for
// the command at the end and yields one final error if the run failed (a
// start failure, a read error, an *ExitError, or an error matching ctx's
// when ctx ended the run). Once ctx is done, nothing more is yielded from
// the pipe, not even what it still holds: the next yield is that final
// error. Breaking out of the loop stops the process (SIGTERM, then SIGKILL
// after KillTimeout) and reaps it before the loop statement returns.
//
// StderrStream is refused with ErrInvalidCommand: the loop gives no way to
// read Process.Stderr, and an unread stderr would block the child. Use
// StderrTail (the default) to find the end of stderr in the ExitError.
func (c *Cmd) Chunks(ctx context.Context) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		c.each(ctx, yield, func(p *Process) func() ([]byte, error) {
			return func() ([]byte, error) { return p.Stdout.Next(ctx) }
		})
	}
}

// Lines is Chunks split into lines: each line without its trailing "\n" or
// "\r\n"; the last line may lack one. A line is valid until the next
// iteration. A line longer than max(ChunkSize, 64 KiB) ends the loop with
// an error wrapping ErrLineTooLong, and the process is stopped.
func (c *Cmd) Lines(ctx context.Context) iter.Seq2[[]byte, error] {
	limit := max(c.chunkSize(), 64<<10)
	return func(yield func([]byte, error) bool) {
		c.each(ctx, yield, func(p *Process) func() ([]byte, error) {
			lr := newLineReader(func() ([]byte, error) { return p.Stdout.Next(ctx) }, limit, false)
			return func() ([]byte, error) {
				line, err := lr.Line()
				if errors.Is(err, ErrLineTooLong) {
					err = commandError(p.name, "stdout", err)
				}
				return line, err
			}
		})
	}
}

// each runs the command and yields what next returns until io.EOF, then
// the run's error if any. Whatever way the loop ends, including a panic in
// its body, the process is stopped and reaped before each returns.
func (c *Cmd) each(ctx context.Context, yield func([]byte, error) bool, reader func(*Process) func() ([]byte, error)) {
	if c.Stderr == StderrStream {
		yield(nil, invalidf(c.name(), "Stderr mode StderrStream with Chunks or Lines: nothing could read Process.Stderr; use Start, or StderrTail"))
		return
	}
	p, err := c.start(ctx, oneShot)
	if err != nil {
		yield(nil, err)
		return
	}
	// Deferred in this order, the pipe is closed first: a child still
	// writing gets EPIPE at once instead of blocking until SIGKILL.
	defer p.Stop(context.Background())
	defer p.Stdout.Close()
	next := reader(p)
	for {
		b, err := next()
		if err == nil && ctx.Err() != nil {
			err = contextError(ctx) // a chunk read as ctx ended is not delivered
		}
		if err == io.EOF {
			break
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			yield(nil, p.stopFor(ctx))
			return
		}
		if err != nil {
			p.Stop(context.Background())
			yield(nil, err)
			return
		}
		if !yield(b, nil) {
			return
		}
	}
	if err := p.Wait(context.Background()); err != nil {
		yield(nil, err)
	}
}

// stopFor stops the process because ctx ended, and returns the run's
// error, which matches ctx's error and cause: the ExitError, or the
// context's error itself when the process had exited on its own before.
func (p *Process) stopFor(ctx context.Context) error {
	cause := contextError(ctx)
	p.Stdout.Close()
	for _, s := range p.stages {
		s.mu.Lock()
		if !s.reaped && s.stopCause == nil {
			s.stopCause = cause // the context's watch may not have run yet
		}
		s.mu.Unlock()
	}
	if err := p.Stop(context.Background()); errors.Is(err, ctx.Err()) {
		return err
	}
	return commandError(p.name, "", cause)
}
