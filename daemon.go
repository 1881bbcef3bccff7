package netrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// RestartPolicy says when a Daemon starts its command again.
type RestartPolicy int

const (
	RestartNever     RestartPolicy = iota // run once; Run returns the run's result
	RestartOnFailure                      // again after a failed run (or start); a clean exit ends Run with nil
	RestartAlways                         // again after every run, until ctx ends
)

// A Daemon supervises a long-running command: it starts it, drains and logs
// its output so the child never blocks, restarts it per Restart with
// exponential backoff, and stops it gracefully when its context ends. Run
// blocks, so a Daemon composes with errgroup like any other task:
//
//	g, ctx := errgroup.WithContext(ctx)
//	g.Go(func() error { return web.Run(ctx) })
//	g.Go(func() error { return worker.Run(ctx) })
//	err := g.Wait()
type Daemon struct {
	Cmd        *Cmd          // template; each start runs a fresh copy
	Restart    RestartPolicy // RestartNever, RestartOnFailure, RestartAlways
	Backoff    time.Duration // first delay between restarts, doubling up to MaxBackoff; 0: 100ms
	MaxBackoff time.Duration // 0: 30s
	// Logger receives each line of output as one record, stdout at Info and
	// stderr at Warn, with attributes "stream" and "pid"; starts, exits and
	// restarts are logged too. nil: output is drained and dropped. Either
	// way an *ExitError keeps the stderr tail. With a PTY, the terminal is
	// logged as stdout.
	Logger *slog.Logger

	pid atomic.Int64
}

// Pid returns the pid of the running process, 0 while none runs.
func (d *Daemon) Pid() int { return int(d.pid.Load()) }

// Run runs the daemon until ctx ends, then stops the process gracefully
// (SIGTERM, KillTimeout, SIGKILL) and returns ctx.Err(). With RestartNever
// it returns the run's own result; with RestartOnFailure, nil after a run
// that succeeded. A delay between restarts doubles from Backoff up to
// MaxBackoff, with jitter, and starts again from Backoff after a run that
// lasted longer than MaxBackoff.
//
// An invalid Cmd (an error wrapping ErrInvalidCommand, found before the
// first start or at any start) is returned at once, whatever the policy:
// retrying cannot help. So is a Stdin that only one run could read: with a
// restart policy, Cmd.Stdin must be nil (each run's stdin is empty) or an
// *os.File (each run gets it as is, at its current offset). With
// RestartNever, any io.Reader works and the run reads it.
func (d *Daemon) Run(ctx context.Context) error {
	if d.Cmd == nil {
		return invalidf("daemon", "nil Cmd")
	}
	if ctx == nil {
		return invalidf(d.Cmd.name(), "nil context")
	}
	if err := d.Cmd.validate(); err != nil {
		return err
	}
	if _, isFile := d.Cmd.Stdin.(*os.File); d.Cmd.Stdin != nil && !isFile && d.Restart != RestartNever {
		return invalidf(d.Cmd.name(), "Stdin is an io.Reader, which only the first run of a restarting Daemon could read; use nil or an *os.File")
	}
	backoff, maxBackoff := d.Backoff, d.MaxBackoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("cmd", d.Cmd.name())

	delay := backoff
	for {
		began := time.Now()
		err := d.runOnce(ctx, log)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrInvalidCommand) {
			return err
		}
		if d.Restart == RestartNever || (d.Restart == RestartOnFailure && err == nil) {
			return err
		}
		if time.Since(began) > maxBackoff {
			delay = backoff
		}
		// Half fixed, half random: restarts of many daemons spread out.
		wait := delay/2 + rand.N(delay/2+1)
		log.Info("restarting", "in", wait, "after", errorOrExit(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// runOnce runs a fresh copy of the command to its end, logging its output.
func (d *Daemon) runOnce(ctx context.Context, log *slog.Logger) error {
	run := *d.Cmd // every field, including any added later
	run.started = 0
	c := &run
	logLines := d.Logger != nil
	// Stderr is logged line by line, from a Stream; on a PTY it is the
	// terminal, logged with stdout.
	if logLines && c.Stderr == StderrTail && c.PTY == nil {
		c.Stderr = StderrStream
	}
	// A stderr Stream is read here, so the ExitError's tail is kept here.
	var stderrTail *tail
	if c.Stderr == StderrStream {
		stderrTail = &tail{n: stderrTailSize}
	}
	p, err := c.start(ctx, oneShot)
	if err != nil {
		log.Error("start failed", "err", err)
		return err
	}
	d.pid.Store(int64(p.Pid()))
	defer d.pid.Store(0)
	log.Info("started", "pid", p.Pid())

	var wg sync.WaitGroup
	drain := func(s *Stream, stream string, level slog.Level, keep *tail) {
		defer wg.Done()
		defer s.Close()
		if !logLines {
			var w io.Writer = io.Discard
			if keep != nil {
				w = keep
			}
			s.writeTo(context.Background(), w) // past ctx: the child may write while it stops
			return
		}
		pid := slog.Int("pid", p.Pid())
		attr := slog.String("stream", stream)
		limit := max(c.chunkSize(), 64<<10)
		lr := newLineReader(func() ([]byte, error) {
			b, err := s.Next(context.Background())
			if keep != nil {
				keep.Write(b)
			}
			return b, err
		}, limit, true)
		for {
			line, err := lr.Line()
			if err != nil {
				return
			}
			log.LogAttrs(context.Background(), level, string(line), attr, pid)
		}
	}
	for _, s := range []struct {
		s     *Stream
		name  string
		level slog.Level
		keep  *tail
	}{{p.Stdout, "stdout", slog.LevelInfo, nil}, {p.Stderr, "stderr", slog.LevelWarn, stderrTail}} {
		if s.s != nil {
			wg.Add(1)
			go drain(s.s, s.name, s.level, s.keep)
		}
	}
	err = p.Wait(context.Background())
	wg.Wait()
	// The ExitError is this run's alone: give it the tail the log saw.
	if ee := (*ExitError)(nil); stderrTail != nil && errors.As(err, &ee) && ee.Stderr == nil {
		ee.Stderr = stderrTail.bytes()
	}
	st := p.Stats()
	log.Info("exited", "pid", p.Pid(), "status", errorOrExit(err), "ran", st.Duration.Round(time.Millisecond))
	return err
}

// errorOrExit describes how a run ended, for the log.
func errorOrExit(err error) string {
	var ee *ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee) && ee.Signal != 0:
		return "signal: " + ee.Signal.String()
	case errors.As(err, &ee):
		return fmt.Sprintf("exit status %d", ee.Code)
	}
	return err.Error()
}
