//go:build unix && !linux

package netrunner

import (
	"os"

	"golang.org/x/sys/unix"
)

// foreground: see terminal_linux.go. Here a child is not lent the terminal.
type foreground struct{}

// lendForeground refuses a Stdin that is this program's controlling
// terminal: the child, in a process group of its own, would be stopped by
// SIGTTIN when it reads.
func lendForeground(name func() string, f *os.File) (*foreground, error) {
	if f == nil {
		return nil, nil
	}
	if _, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP); err != nil {
		return nil, nil
	}
	return nil, invalidf(name(), "Stdin is this program's controlling terminal, which a child in a process group of its own "+
		"cannot read on this platform (it would be stopped by SIGTTIN): give it a pipe, a file or a PTY")
}

func (t *foreground) handBack(child int) {}
