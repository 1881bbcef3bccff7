//go:build !linux

package netrunner

import (
	"fmt"
	"os"
)

func (s *stdio) openPTY(c *Cmd) error {
	return fmt.Errorf("PTY: %w", ErrUnsupported)
}

// newTerminal returns nil: no child has a PTY here.
func newTerminal(*os.File, int) terminal { return nil }
