//go:build !linux

package netrunner

import "fmt"

func (s *stdio) openPTY(c *Cmd) error {
	return fmt.Errorf("PTY: %w", ErrUnsupported)
}

// Resize sets the terminal's size; the child gets SIGWINCH. It is an error
// on a process without a PTY.
func (p *Process) Resize(ws Winsize) error {
	return fmt.Errorf("netrunner: %q: resize: the process has no PTY", p.name)
}

// typeEOF is never called: no process has a PTY here.
func (p *Process) typeEOF() {}
