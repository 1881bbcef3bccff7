package netrunner

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openPTY gives the child a new pseudo-terminal's slave on fds 0, 1 and 2
// and keeps the master: Stdout reads it, Write writes to it (through a
// second descriptor, so that ending stdin never closes the reading side).
func (s *stdio) openPTY(c *Cmd) error {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	s.ours = append(s.ours, master) // until it is wrapped below
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return os.NewSyscallError("ioctl TIOCSPTLCK", err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		return os.NewSyscallError("ioctl TIOCGPTN", err)
	}
	slaveName := "/dev/pts/" + strconv.Itoa(int(n))
	slave, err := unix.Open(slaveName, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: slaveName, Err: err}
	}
	s.ours = append(s.ours, slave)
	if err := setWinsize(master, *c.PTY); err != nil {
		return err
	}
	writer, err := unix.FcntlInt(uintptr(master), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	for _, fd := range []int{master, writer} {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(writer)
			return os.NewSyscallError("fcntl", err)
		}
	}
	s.ours = s.ours[:0:0]
	s.ours = append(s.ours, slave)
	s.pty = os.NewFile(uintptr(master), slaveName)
	s.stdout = s.pty
	s.stdin = os.NewFile(uintptr(writer), slaveName)
	s.child = [3]int{slave, slave, slave}
	return nil
}

func setWinsize(fd int, ws Winsize) error {
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols}); err != nil {
		return os.NewSyscallError("ioctl TIOCSWINSZ", err)
	}
	return nil
}

// Resize sets the terminal's size; the child gets SIGWINCH. It is an error
// on a process without a PTY.
func (p *Process) Resize(ws Winsize) error {
	if p.pty == nil {
		return fmt.Errorf("netrunner: %q: resize: the process has no PTY", p.name)
	}
	rc, err := p.pty.SyscallConn()
	if err != nil {
		return fmt.Errorf("netrunner: %q: resize: %w", p.name, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setWinsize(int(fd), ws) }); err != nil {
		return fmt.Errorf("netrunner: %q: resize: %w", p.name, err)
	}
	if serr != nil {
		return fmt.Errorf("netrunner: %q: resize: %w", p.name, serr)
	}
	return nil
}

// sendEOF types the terminal's end-of-file character (VEOF, normally
// Ctrl-D): on a terminal, that is how a reader is told the input ended.
func (p *Process) sendEOF() error {
	t, err := p.termios()
	if err != nil {
		return err
	}
	_, err = p.Write(context.Background(), []byte{t.Cc[unix.VEOF]})
	return err
}

func (p *Process) termios() (*unix.Termios, error) {
	rc, err := p.pty.SyscallConn()
	if err != nil {
		return nil, err
	}
	var t *unix.Termios
	var terr error
	if err := rc.Control(func(fd uintptr) { t, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil {
		return nil, err
	}
	if terr != nil {
		return nil, os.NewSyscallError("ioctl TCGETS", terr)
	}
	return t, nil
}

// typeEOF ends the input that Run, Output, Chunks and Lines, or the copy of
// Cmd.Stdin, gave the terminal, as closing a pipe would: it types VEOF, which
// a reader in canonical mode sees as end-of-file. After a partial line (last
// is the last byte typed; -1: none) the first VEOF only hands that line
// over, so a second one follows. A child that turned canonical mode off reads
// the characters as they are. Errors are ignored: they mean the terminal or
// the process is gone, and then nobody waits for the end-of-file.
func (p *Process) typeEOF(last int) {
	t, err := p.termios()
	if err != nil {
		return
	}
	eof := []byte{t.Cc[unix.VEOF], t.Cc[unix.VEOF]}
	if last < 0 || endsLine(t, byte(last)) {
		eof = eof[:1]
	}
	n, _ := p.stdin.Write(eof)
	p.countWrite(n)
}

// endsLine reports whether c ends a line on a terminal in canonical mode.
func endsLine(t *unix.Termios, c byte) bool {
	switch {
	case c == '\n':
		return true
	case c == '\r':
		return t.Iflag&unix.ICRNL != 0 && t.Iflag&unix.IGNCR == 0
	}
	// 0 is _POSIX_VDISABLE: the character is not set.
	return c != 0 && (c == t.Cc[unix.VEOL] || c == t.Cc[unix.VEOL2] || c == t.Cc[unix.VEOF])
}
