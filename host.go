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
// Besides one session per running command, the package keeps one session
// per client open, to signal remote process groups and to kill them if the
// connection is lost (see controls). OpenSSH allows 10 sessions per
// connection by default (MaxSessions), so one client runs up to 9 commands
// at a time.
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
