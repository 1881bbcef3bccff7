// Command daemon supervises two processes and a Go worker under one errgroup
// until Ctrl-C (or SIGTERM), then stops them all gracefully:
//
//	go run ./examples/daemon
//
// "ticker" prints a line every second and is restarted whenever it ends;
// "flaky" fails after a moment and is restarted with a growing delay. Every
// line they print becomes a log record on stderr, tagged with its stream
// and pid.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netrunner-go/netrunner"
	"golang.org/x/sync/errgroup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ticker := &netrunner.Daemon{
		Cmd:     netrunner.Command("sh", "-c", "while :; do echo tick; sleep 1; done"),
		Restart: netrunner.RestartAlways,
		Logger:  log.With("daemon", "ticker"),
	}
	flaky := &netrunner.Daemon{
		Cmd:        netrunner.Command("sh", "-c", `echo "up for a moment"; sleep 1; echo "giving up" >&2; exit 1`),
		Restart:    netrunner.RestartOnFailure,
		Backoff:    500 * time.Millisecond, // then 1s, 2s, 4s, 4s...
		MaxBackoff: 4 * time.Second,
		Logger:     log.With("daemon", "flaky"),
	}
	// Each daemon's child gets SIGTERM when ctx ends, and SIGKILL if it is
	// still there after this grace.
	ticker.Cmd.KillTimeout = 2 * time.Second
	flaky.Cmd.KillTimeout = 2 * time.Second

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ticker.Run(ctx) })
	g.Go(func() error { return flaky.Run(ctx) })
	g.Go(func() error { return worker(ctx, log.With("worker", "status"), ticker, flaky) })

	// Run returns ctx.Err() once its process is stopped, so a clean stop
	// ends the group with context.Canceled.
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
	log.Info("stopped cleanly")
}

// worker stands for the program's own work: here it reports which daemons
// are running every two seconds.
func worker(ctx context.Context, log *slog.Logger, ticker, flaky *netrunner.Daemon) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			// Pid is 0 while a daemon waits to restart.
			log.Info("status", "ticker_pid", ticker.Pid(), "flaky_pid", flaky.Pid())
		}
	}
}
