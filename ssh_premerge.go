package netrunner

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// TEMPORARY until the stages refactor lands on main: delete at the merge.
type exitStatus struct {
	code         int
	signal       syscall.Signal
	user, system time.Duration
	maxRSS       int64
}

type child interface {
	wait(mu *sync.Mutex, exited func(exitStatus, error))
	signalGroup(sig syscall.Signal) error
	endLeftovers(grace time.Duration, killNow <-chan struct{})
	release()
}

var _ child = (*remoteChild)(nil)

func (c *Cmd) checkHost() error {
	if c.Host == nil {
		return nil
	}
	return fmt.Errorf("netrunner: %q: Host %s: remote execution: %w", c.name(), c.Host.hostName(), ErrUnsupported)
}
