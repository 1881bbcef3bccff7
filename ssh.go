//go:build unix

package netrunner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// A remoteChild is a program running on an SSH host: the child a stage
// supervises for a Cmd with a Host. Its output reaches the stage through
// local kernel pipes: a goroutine per stream copies the SSH channel into the
// write end of a pipe whose read end is the Stream, exactly as for a local
// child, and stdin goes the other way. So every Stream and Write semantic
// holds unchanged, and backpressure holds end to end: a Stream nobody reads
// fills its pipe, the copy blocks, the channel's window is not refilled, and
// the remote program blocks in write(2). Memory per stream is bounded by
// the SSH window (2 MiB in x/crypto/ssh), the pipe and one copy buffer.
//
// The remote program leads a process group of its own (sshd starts every
// session in a new session), whose id the wrapper script reports before the
// program runs; the Host's control session signals the group and kills it
// when the connection ends.
type remoteChild struct {
	name string // the command, for errors
	host *sshHost
	ctl  *control
	ch   ssh.Channel
	exit <-chan remoteExit
	pgid int
	pty  bool

	out       []*bridge // the copies of stdout and stderr
	stdinFrom *os.File  // the read end of the local stdin pipe, copied into the channel

	mu     sync.Mutex
	exited bool // the exit status came: the group may be gone, no more signals

	startOut   func()    // starts the output bridges
	finishOnce sync.Once // finishOutput runs once
}

// startRemoteStage starts c on its Host as stage i of p: a stage like any
// other, whose child is remote.
func (c *Cmd) startRemoteStage(ctx context.Context, p *Process, i int, w wiring) error {
	r, s, err := c.startRemote(ctx, c.Host.(*sshHost), w)
	if err != nil {
		return err
	}
	name := w.name
	if name == "" {
		name = c.name()
	}
	var term terminal
	if r.pty {
		term = r
	}
	newStage(ctx, c, p, i, name, r.pgid, r, s, nil, term)
	return nil
}

// checkRemote refuses, before anything starts, what a remote host cannot do.
func (c *Cmd) checkRemote(h *sshHost, w wiring) error {
	unsupported := func(what string) error {
		return commandErrorf(c.name(), "%s on %s: %w", what, h.name, ErrUnsupported)
	}
	switch {
	case h.client == nil:
		return invalidf(c.name(), "Host: SSH(nil)")
	case c.Cgroup != "" || len(c.CgroupSettings) > 0:
		return unsupported("Cgroup")
	case c.PipeSize != 0:
		return unsupported("PipeSize")
	case w.stdin >= 0 || w.stdout >= 0:
		return unsupported("a pipeline stage")
	}
	prog, _ := c.remoteProgram()
	if strings.HasPrefix(prog, "-") {
		return invalidf(c.name(), "program %q starts with '-': the remote shell would read it as an option", prog)
	}
	if c.Env != nil && strings.Contains(prog, "=") {
		return invalidf(c.name(), "program %q contains '=' and Env is set: env would read it as a variable", prog)
	}
	return nil
}

// startRemote starts c on h and returns the child and the parent ends of
// its local pipes. It returns once the program is about to run: the remote
// shell has checked Dir and the program and reported the process group,
// and the control session watches the group.
func (c *Cmd) startRemote(ctx context.Context, h *sshHost, w wiring) (_ *remoteChild, _ *stdio, err error) {
	fail := func(format string, args ...any) error {
		return commandErrorf(c.name(), "%s: %s", h.name, fmt.Sprintf(format, args...))
	}
	ctl, err := h.control()
	if err != nil {
		return nil, nil, commandError(c.name(), "", err)
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	marker := remoteMarker + hex.EncodeToString(nonce[:]) + " "
	script := remoteScript(c, marker)
	if err := c.checkRemoteScript(h, script); err != nil {
		return nil, nil, err
	}
	r := &remoteChild{name: c.name(), host: h, ctl: ctl, pty: c.PTY != nil}
	var closeOnFail []io.Closer
	defer func() {
		if err != nil {
			for _, f := range closeOnFail {
				f.Close()
			}
		}
	}()
	ch, exit, err := openCommandSession(h.client, h.name)
	if err != nil {
		return nil, nil, commandError(c.name(), "", err)
	}
	r.ch, r.exit = ch, exit
	closeOnFail = append(closeOnFail, ch)
	if c.PTY != nil {
		if err := ptyRequest(ch, *c.PTY); err != nil {
			return nil, nil, fail("PTY: %v", err)
		}
	}
	if err := execRequest(ch, script); err != nil {
		return nil, nil, fail("start: %v", err)
	}
	stopReading := context.AfterFunc(ctx, func() { ch.Close() })
	pgid, rest, err := readStartMarker(ch, marker)
	if !stopReading() {
		return nil, nil, commandError(c.name(), "not started", contextError(ctx))
	}
	switch {
	case err != nil:
		return nil, nil, fail("start: %v%s", err, remoteStderr(ch, exit))
	case pgid == remoteNoDir:
		return nil, nil, fail("Dir %q: no such directory, or not one the user may enter", c.Dir)
	case pgid == remoteNotFound:
		prog, _ := c.remoteProgram()
		return nil, nil, commandError(c.name(), h.name, &exec.Error{Name: prog, Err: exec.ErrNotFound})
	}
	if r.pgid, err = strconv.Atoi(pgid); err != nil || r.pgid <= 1 {
		return nil, nil, fail("start: the remote shell reported %q, not a process id", pgid)
	}
	if _, err := ctl.request("watch", "-", r.pgid); err != nil {
		return nil, nil, commandError(c.name(), "", err)
	}
	// The program runs from here.
	if _, err := ch.Write([]byte{'\n'}); err != nil {
		ctl.send("kill", "KILL", r.pgid)
		ctl.send("forget", "-", r.pgid)
		return nil, nil, fail("start: %v", err)
	}
	s, err := r.connect(c, w, rest)
	if err != nil {
		ctl.send("kill", "KILL", r.pgid)
		ctl.send("forget", "-", r.pgid)
		return nil, nil, fail("%v", err)
	}
	r.startBridges()
	return r, s, nil
}

// readStartMarker reads the channel up to the wrapper's marker line and
// returns what follows marker on it (a pid, remoteNoDir or remoteNotFound)
// and the bytes read past it. What a login shell's rc files print before it
// is dropped, up to a bound.
func readStartMarker(r io.Reader, marker string) (string, []byte, error) {
	const most = 64 << 10
	var buf []byte
	chunk := make([]byte, 4096)
	for len(buf) < most {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.Index(buf, []byte(marker)); i >= 0 {
			if j := bytes.IndexByte(buf[i:], '\n'); j >= 0 {
				line := strings.TrimRight(string(buf[i+len(marker):i+j]), "\r")
				return line, buf[i+j+1:], nil
			}
		}
		if err != nil {
			if err == io.EOF {
				return "", nil, errors.New("the remote shell ended before the program started")
			}
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("no start marker in the first %d bytes of output: is the login shell a POSIX shell?", most)
}

// remoteStderr returns, for an error message, what the remote shell wrote
// to stderr and its exit status, when a start failed; it waits a little
// for them.
func remoteStderr(ch ssh.Channel, exit <-chan remoteExit) string {
	var msg string
	select {
	case e := <-exit:
		if e.ok {
			msg = fmt.Sprintf(" (exit status %d%s)", e.code, e.signal)
		}
	case <-time.After(time.Second):
	}
	ch.Close()
	b, _ := io.ReadAll(io.LimitReader(ch.Stderr(), 4096))
	if last := lastLine(b); len(last) > 0 {
		msg += ": " + strconv.Quote(string(last))
	}
	return msg
}
