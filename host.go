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

// SSH returns a Host that runs commands over client, one SSH session per
// command, with the same types and guarantees as a local command; see
// "Remote hosts" in the package documentation. The caller dials and
// authenticates, so agents, known_hosts and jump hosts stay the caller's,
// and closes the client when done with it.
//
// The Host also keeps one session of its own open on the client, to signal
// remote process groups and to kill them if the connection is lost: call
// SSH once per client and share the Host. OpenSSH allows 10 sessions per
// connection by default (MaxSessions), so such a Host runs up to 9
// commands at a time.
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

	mu  sync.Mutex
	ctl *control // started with the first command; replaced once it ends
}

func (h *sshHost) hostName() string { return h.name }

// control returns the Host's control session, starting it if there is none
// or the last one ended.
func (h *sshHost) control() (*control, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctl != nil && !h.ctl.isDead() {
		return h.ctl, nil
	}
	ctl, err := startControl(h.client, h.name)
	if err != nil {
		return nil, err
	}
	h.ctl = ctl
	return ctl, nil
}

// checkHost refuses, before anything starts, what the Host cannot run.
func (c *Cmd) checkHost(w wiring) error {
	if h, ok := c.Host.(*sshHost); ok {
		return c.checkRemote(h, w)
	}
	return nil
}
