package netrunner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

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
	s.stdin.file = os.NewFile(uintptr(writer), slaveName)
	s.child = [3]int{slave, slave, slave}
	return nil
}

func setWinsize(fd int, ws Winsize) error {
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols}); err != nil {
		return os.NewSyscallError("ioctl TIOCSWINSZ", err)
	}
	return nil
}

// ptyTerminal is a child's terminal as its stage sees it: the master, and
// the child, which leads the terminal's session.
type ptyTerminal struct {
	master *os.File
	pid    int
}

// newTerminal returns the terminal of a child spawned on master, or nil
// without one.
func newTerminal(master *os.File, pid int) terminal {
	if master == nil {
		return nil
	}
	return &ptyTerminal{master: master, pid: pid}
}

func (t *ptyTerminal) resize(ws Winsize) error {
	rc, err := t.master.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setWinsize(int(fd), ws) }); err != nil {
		return err
	}
	return serr
}

func (t *ptyTerminal) termios() (*unix.Termios, error) {
	rc, err := t.master.SyscallConn()
	if err != nil {
		return nil, err
	}
	var tio *unix.Termios
	var terr error
	if err := rc.Control(func(fd uintptr) { tio, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil {
		return nil, err
	}
	if terr != nil {
		return nil, os.NewSyscallError("ioctl TCGETS", terr)
	}
	return tio, nil
}

// endInput ends the terminal's input as closing a pipe would: it types VEOF,
// which a reader in canonical mode sees as end-of-file. After a partial line
// the first VEOF only hands that line over, so a second one follows.
//
// It types only while the terminal is in canonical mode and a process on it
// waits for input, polling until then or until the process is done. Typed
// earlier, the VEOF would wait in the terminal as a NUL ending a line, and a
// child that turned canonical mode off before reading it would read that NUL
// as data; in non-canonical mode VEOF itself is just data. Errors end the
// waiting: they mean the terminal or the process is gone. A poll counts as
// waiting whatever it polls, so a child that polls something else (a Go
// child's runtime always does) and only later turns canonical mode off with
// TCSANOW can still read the NUL.
func (t *ptyTerminal) endInput(last int32, done <-chan struct{}) {
	go func() {
		delay := time.Millisecond
		timer := time.NewTimer(delay)
		defer timer.Stop()
		for {
			tio, err := t.termios()
			if err != nil {
				return
			}
			if tio.Lflag&unix.ICANON != 0 && t.inputAwaited() {
				eof := []byte{tio.Cc[unix.VEOF], tio.Cc[unix.VEOF]}
				if last < 0 || endsLine(tio, byte(last)) {
					eof = eof[:1]
				}
				t.master.Write(eof)
				return
			}
			select {
			case <-done:
				return
			case <-timer.C:
			}
			delay = min(2*delay, 100*time.Millisecond)
			timer.Reset(delay)
		}
	}()
}

// inputAwaited reports whether a process of the terminal's session sleeps
// in a read of the terminal or in a poll (of anything). When it cannot tell,
// for a process it may not inspect (setuid), it says yes, so that such a
// child still gets its end-of-file. It looks at the child and its
// descendants, not at every process of the system, since it runs again and
// again while a child does not read.
func (t *ptyTerminal) inputAwaited() bool {
	for _, pid := range descendants(t.pid) {
		if !inSession(pid, t.pid) {
			continue
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue // gone
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if errors.Is(err, os.ErrPermission) {
				return true
			}
			if err == nil && t.awaitsInput(pid, strings.Fields(string(b))) {
				return true
			}
		}
	}
	return false
}

// descendants returns root and the processes below it, from the children
// lists of /proc/PID/task/TID/children (at most a few thousand).
func descendants(root int) []int {
	pids := []int{root}
	for i := 0; i < len(pids) && len(pids) < 4096; i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pids[i]))
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pids[i], task.Name()))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// inSession reports whether the live process pid belongs to session sid.
func inSession(pid, sid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// After the command name, in parentheses: state, ppid, pgrp, session.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 3 && f[0] != "Z" && f[3] == strconv.Itoa(sid)
}

// awaitsInput reports whether a task blocked in the system call that
// /proc/PID/task/TID/syscall describes (number, then arguments) waits for
// input: a read of the terminal, or any poll.
func (t *ptyTerminal) awaitsInput(pid int, call []string) bool {
	if len(call) < 2 {
		return false // running
	}
	nr, err := strconv.Atoi(call[0])
	if err != nil {
		return false
	}
	switch {
	case readCalls[nr]:
		fd, err := strconv.ParseInt(call[1], 0, 64)
		if err != nil {
			return false
		}
		name, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		return err == nil && name == t.master.Name()
	case pollCalls[nr]:
		return true
	}
	return false
}

var readCalls = map[int]bool{
	unix.SYS_READ: true, unix.SYS_READV: true, unix.SYS_PREAD64: true,
	unix.SYS_PREADV: true, unix.SYS_PREADV2: true,
}

// pollCalls holds the polls of every architecture; pty_linux_amd64.go adds
// the older ones that only some have.
var pollCalls = map[int]bool{
	unix.SYS_PPOLL: true, unix.SYS_PSELECT6: true,
	unix.SYS_EPOLL_PWAIT: true, unix.SYS_EPOLL_PWAIT2: true,
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
