//go:build unix && !linux

package netrunner

import (
	"syscall"
	"time"
)

// endGroup: see group_linux.go. Without /proc the group id is all there
// is to signal; zombies in the group count as members here.
func endGroup(pgid int, grace time.Duration, kill <-chan struct{}) {
	if syscall.Kill(-pgid, 0) != nil {
		return
	}
	if grace >= 0 {
		syscall.Kill(-pgid, syscall.SIGTERM)
		syscall.Kill(-pgid, syscall.SIGCONT)
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		for syscall.Kill(-pgid, 0) == nil {
			select {
			case <-deadline.C:
			case <-kill:
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}
