package netrunner

import (
	"sync"

	"golang.org/x/crypto/ssh"
)

// A Host is where a command runs. A nil Cmd.Host is this machine; SSH
// returns one for a remote machine. Only this package implements Host.
type Host interface {
	// hostName describes the host for errors.
	hostName() string
}

// SSH returns a Host that runs commands over client, an OpenSSH server,
// one session per command, with the same types as a local command: Start,
// Run, Output, Chunks, Lines, every Stream and Process method, stderr
// modes, Env, Dir, PTY and Resize. The caller dials and authenticates, so
// agents, known_hosts and jump hosts stay the caller's, and closes the
// client when done with it. Hosts are cheap: SSH may be called per command.
//
// The remote side needs a POSIX login shell (sh, dash, bash, ksh, zsh) and
// kill, and env when Cmd.Env is set; nothing is installed there.
//
// What holds, as for a local command:
//   - Arguments reach the program byte for byte: each is single-quoted for
//     the remote shell. The program is Cmd.Path (or Args[0]); a shell cannot
//     give it another argv[0].
//   - Backpressure: the output comes through local pipes fed from the SSH
//     channel, and a consumer that stops reading makes the remote program
//     block in write(2). Memory per stream stays below the channel window
//     (2 MiB), the pipe and a 128 KiB copy buffer. Once the program and its
//     group are gone, what is still in flight (at most the windows of both
//     sides, bounded at 16 MiB) is kept in memory, so that Done and Wait do
//     not wait for a consumer.
//   - The program leads a process group of its own on the remote host
//     (sshd gives each session its own), and Pid returns its id there.
//     Signal, Stop, Kill and the end of the context reach the whole group,
//     through one control session per client that runs kill -s NAME --
//     -PGID (sshd ignores the SSH "signal" request); after the exit, what
//     is left of the group gets TERM, then KILL after KillTimeout. When the
//     control session's input ends (the client was closed, the connection
//     was lost, or the Go program died and its connection with it), it
//     SIGKILLs every group it still watches. A program without PTY starts
//     only once its group is watched; one with a PTY starts a round trip
//     earlier, and a lost connection hangs its terminal up anyway.
//   - A group is signalled only until sshd reports the exit, and after it
//     while kill -0 finds a member; it is forgotten once found empty, so no
//     later kill reaches a group that reuses the id. (A zombie counts as a
//     member until the remote init reaps it.)
//   - Exit statuses and deaths by signal come back as *ExitError, the
//     signal mapped by name. A session that ends without either (the
//     connection was lost) makes Wait return an error naming the host.
//   - Dir is entered with cd and the program looked up in the remote PATH
//     before it runs: Start reports a missing Dir, or a missing program
//     wrapping exec.ErrNotFound (not when Env sets PATH: then it exits 127).
//
// What differs:
//   - A nil Env is the remote login environment; a non-nil one is exactly
//     the environment (env -i). An empty Dir is the login directory.
//   - Cmd.Stdin, an *os.File too, is read and copied into the session.
//   - Stdout and stderr share the channel's window: a consumer that stops
//     reading stdout also holds back stderr once the window is full.
//   - Closing Process.Stdout sends SIGPIPE to the group and drops the rest.
//   - A signal that has no portable name (real-time ones) returns an error
//     wrapping ErrUnsupported. Signal(0) makes a round trip.
//   - A process that leaves the group (setsid) is not ended; once the group
//     is gone, its holding the output open ends the Streams after 250 ms
//     without data.
//   - On a PTY (pty-req with TERM=xterm and the server's default modes;
//     Resize sends window-change), the end of stdin types ^D after the
//     last byte, twice after a partial line: a program reading the
//     terminal in canonical mode sees the end of its input.
//   - Cgroup, CgroupSettings, PipeSize and Pipeline stages return errors
//     wrapping ErrUnsupported before anything starts. Stats has no CPU
//     times or MaxRSS: they are zero.
//   - Each running command takes a session, and each client one more:
//     OpenSSH allows 10 per connection by default (MaxSessions), so one
//     client runs up to 9 commands at a time.
//   - On windows, starting a remote command returns ErrUnsupported.
func SSH(client *ssh.Client) Host {
	name := "ssh (nil client)"
	if client != nil {
		name = "ssh " + client.User() + "@" + client.RemoteAddr().String()
	}
	return &sshHost{client: client, name: name}
}

type sshHost struct {
	client *ssh.Client
	name   string
}

func (h *sshHost) hostName() string { return h.name }

// controls holds the control session of each client in use, whichever of
// its Hosts started it. An entry goes when its session ends (the client
// was closed or the connection lost). Each entry has a lock of its own, so
// that a slow server delays only its own client's first command.
var controls struct {
	sync.Mutex
	m map[*ssh.Client]*clientControl
}

type clientControl struct {
	mu  sync.Mutex
	ctl *control
}

// control returns the client's control session, starting it if there is
// none or the last one ended.
func (h *sshHost) control() (*control, error) {
	controls.Lock()
	if controls.m == nil {
		controls.m = map[*ssh.Client]*clientControl{}
	}
	cc := controls.m[h.client]
	if cc == nil {
		cc = &clientControl{}
		controls.m[h.client] = cc
	}
	controls.Unlock()

	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.ctl != nil && !cc.ctl.isDead() {
		return cc.ctl, nil
	}
	forget := func() {
		controls.Lock()
		defer controls.Unlock()
		if controls.m[h.client] == cc {
			delete(controls.m, h.client)
		}
	}
	ctl, err := startControl(h.client, h.name, func(*control) { forget() })
	if err != nil {
		forget()
		return nil, err
	}
	cc.ctl = ctl
	return ctl, nil
}

// checkHost refuses, before anything starts, what the Host cannot run.
func (c *Cmd) checkHost(w wiring) error {
	if h, ok := c.Host.(*sshHost); ok {
		return c.checkRemote(h, w)
	}
	return nil
}
