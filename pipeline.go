package netrunner

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Pipeline returns a Pipe that runs cmds as `a | b | c`: each stage's stdout
// is the next stage's stdin, through a kernel pipe that the Go process never
// reads. Each Cmd configures its stage as usual (its Stderr mode, Env, Dir,
// KillTimeout, Cgroup); stdin is the previous stage, except for the first.
// Only the last stage may use StderrStream. Stages that share a Cgroup are
// killed together when the first of them ends: give each its own.
func Pipeline(cmds ...*Cmd) *Pipe { return &Pipe{cmds: cmds} }

// A Pipe is a pipeline of commands; see Pipeline. Like a Cmd, it starts once.
type Pipe struct {
	cmds    []*Cmd
	started atomic.Bool
}

// Start starts every stage and returns a Process that stands for the whole
// pipeline:
//   - Write and CloseStdin feed the first stage (unless its Cmd.Stdin is set);
//     Pid is the first stage's.
//   - Stdout streams the last stage's stdout with the usual demand; Stderr is
//     the last stage's, with StderrStream.
//   - Signal, Stop, Kill and the end of ctx reach every stage (each runs in a
//     process group of its own).
//   - Wait returns once every stage is reaped. It returns nil when every
//     stage succeeded; otherwise the errors of the failed stages joined
//     rightmost first (errors.Join), so errors.As finds the rightmost
//     failure, as bash's pipefail reports it: an *ExitError that names the
//     stage and carries its stderr tail. ExitCode is the rightmost failed
//     stage's. A stage killed by SIGPIPE after the stage it feeds had exited
//     did not fail: that is how `yes | head -1` ends. (A reader that closes
//     its stdin and exits within half a second counts as having exited.)
//   - Stats count bytes into the first stage and out of the last; the bytes
//     between stages never pass through Go.
//
// If a stage fails to start, the stages already started are killed and
// reaped, and the error names the pipeline and the stage.
func (pl *Pipe) Start(ctx context.Context) (*Process, error) {
	names := make([]string, len(pl.cmds))
	for i, c := range pl.cmds {
		if c == nil {
			return nil, invalidf("pipeline", "stage %d is a nil *Cmd", i+1)
		}
		names[i] = c.name()
	}
	line := strings.Join(names, " | ")
	if len(pl.cmds) == 0 {
		return nil, invalidf("pipeline", "no commands")
	}
	for i, c := range pl.cmds {
		if err := c.validate(); err != nil {
			return nil, &stageError{line, i + 1, err}
		}
		if c.PTY != nil {
			return nil, invalidf(line, "stage %d has a PTY; pipeline stages talk through pipes", i+1)
		}
		if c.Host != nil {
			return nil, commandErrorf(line, "stage %d runs on %s: remote pipeline stages: %w", i+1, c.Host.hostName(), ErrUnsupported)
		}
		if i > 0 && c.Stdin != nil {
			return nil, invalidf(line, "stage %d has Stdin set; its stdin is stage %d", i+1, i)
		}
		if i < len(pl.cmds)-1 && c.Stderr == StderrStream {
			// Only the last stage's Stderr is the pipeline Process's;
			// another Stream would have no reader, and block its stage.
			return nil, invalidf(line, "stage %d has StderrStream; only the last stage's stderr can be streamed", i+1)
		}
	}
	if pl.started.Swap(true) {
		return nil, commandErrorf(line, "already started; a Pipe runs once")
	}

	// links[i] connects stage i to stage i+1; both ends go to children, so
	// both stay blocking.
	links := make([][2]int, len(pl.cmds)-1)
	closeLinks := func() {
		for _, l := range links {
			for _, fd := range l {
				if fd > 0 {
					closeFD(fd)
				}
			}
		}
	}
	for i := range links {
		if err := pipeCloexec(&links[i]); err != nil {
			closeLinks()
			return nil, commandError(line, "", err)
		}
		if size := pl.cmds[i].PipeSize; size > 0 {
			if err := setPipeSize(links[i][1], size); err != nil {
				closeLinks()
				return nil, &stageError{line, i + 1, err}
			}
		}
	}

	p := newProcess(line, len(pl.cmds))
	for i, c := range pl.cmds {
		w := wiring{stdin: -1, stdout: -1, name: fmt.Sprintf("%s (stage %d of %d)", names[i], i+1, len(names))}
		if i > 0 {
			w.stdin = links[i-1][0]
		}
		if i < len(links) {
			w.stdout = links[i][1]
		}
		if err := c.startStage(ctx, p, i, w); err != nil {
			closeLinks()
			// Their stdout is a link to the next stage: no Stream to close.
			for _, s := range p.stages[:i] {
				s.kill()
				<-s.done
			}
			return nil, &stageError{line, i + 1, err}
		}
	}
	// The parent's copies must go, or the readers never see EOF.
	closeLinks()
	return p.started(), nil
}

// brokenPipeGrace is how much later than a stage that SIGPIPE killed the
// stage it feeds may have been reaped for the SIGPIPE to count as the end of
// the reader, not a failure. Reaping lags exits by scheduling noise, and a
// reader may close its stdin just before it exits (GNU head does).
const brokenPipeGrace = 500 * time.Millisecond

// readerEnded reports whether SIGPIPE killed s when next, the stage it
// feeds, had exited: how a producer learns that nobody wants more
// (`yes | head -1`), which is no failure. Both are reaped.
func readerEnded(s, next *stage) bool {
	s.mu.Lock()
	sigpipe := s.exit.signal == syscall.SIGPIPE && s.stopCause == nil
	brokenAt := s.exitedAt
	s.mu.Unlock()
	next.mu.Lock()
	defer next.mu.Unlock()
	return sigpipe && next.exitedAt.Before(brokenAt.Add(brokenPipeGrace))
}

// stageError is a stage's start error as the pipeline reports it: naming
// the pipeline and the stage, with the package prefix once.
type stageError struct {
	line  string
	stage int
	err   error
}

func (e *stageError) Error() string {
	return fmt.Sprintf("netrunner: %s: stage %d: %s", e.line, e.stage, strings.TrimPrefix(e.err.Error(), "netrunner: "))
}

func (e *stageError) Unwrap() error { return e.err }
