//go:build !unix

package netrunner

import (
	"context"
	"runtime"
)

// checkRemote refuses remote commands: the bridges between the SSH channel
// and the Streams are Unix pipes.
func (c *Cmd) checkRemote(h *sshHost, _ wiring) error {
	return commandErrorf(c.name(), "%s: remote execution on %s: %w", h.name, runtime.GOOS, ErrUnsupported)
}

func (c *Cmd) startRemoteStage(context.Context, *Process, int, wiring) error {
	return c.checkRemote(c.Host.(*sshHost), wiring{})
}
