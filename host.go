package netrunner

import (
	"golang.org/x/crypto/ssh"
)

// A Host is where a command runs. A nil Cmd.Host is this machine; SSH
// returns one for a remote machine. Only this package implements Host.
type Host interface {
	// hostName describes the host for errors.
	hostName() string
}

// SSH returns a Host that runs commands over client, one SSH session per
// command; the caller dials and authenticates, so agents, known_hosts and
// jump hosts stay the caller's.
//
// Remote execution is not implemented yet: starting a Cmd whose Host is
// set returns an error wrapping ErrUnsupported, before anything runs.
func SSH(client *ssh.Client) Host { return sshHost{client: client} }

type sshHost struct{ client *ssh.Client }

func (h sshHost) hostName() string {
	if h.client == nil {
		return "ssh (nil client)"
	}
	return "ssh " + h.client.RemoteAddr().String()
}

// checkHost refuses what the Host cannot run.
func (c *Cmd) checkHost() error {
	if c.Host == nil {
		return nil
	}
	return commandErrorf(c.name(), "Host %s: remote execution: %w", c.Host.hostName(), ErrUnsupported)
}
