package netrunner

import (
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A foreground is this program's controlling terminal, lent to one child as
// the terminal's foreground process group for the child's life.
//
// Every child runs in a process group of its own, and the terminal stops a
// background group that reads it (SIGTTIN). A child whose Stdin is the
// program's controlling terminal therefore starts in the foreground
// (SysProcAttr.Foreground), as a shell starts a job, and the terminal goes
// back to the program's group once the child is reaped.
type foreground struct {
	fd   int // our own descriptor of the terminal, for the hand-back
	pgrp int // the program's process group
}

// foregroundLent is set while a child has the terminal: one group at a time
// can be its foreground.
var foregroundLent atomic.Bool

// lendForeground returns a foreground when f is this program's controlling
// terminal, nil when it is anything else (no job control applies then), and
// an error wrapping ErrInvalidCommand when the child could not read it.
func lendForeground(name func() string, f *os.File) (*foreground, error) {
	if f == nil {
		return nil, nil
	}
	fd := int(f.Fd())
	// TIOCGPGRP answers only on the caller's controlling terminal.
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return nil, nil
	}
	pgrp := unix.Getpgrp()
	inUse := invalidf(name(), "Stdin is this program's controlling terminal, which another child has in the foreground; "+
		"one child at a time can read the terminal")
	if foregroundLent.Load() {
		return nil, inUse
	}
	if fg != pgrp {
		return nil, invalidf(name(), "Stdin is this program's controlling terminal, but the program is not in its foreground "+
			"(was it started in the background?): the child would be stopped (SIGTTIN) when it reads; "+
			"give it a pipe, a file or a PTY instead")
	}
	if !foregroundLent.CompareAndSwap(false, true) {
		return nil, inUse
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		foregroundLent.Store(false)
		return nil, commandError(name(), "Stdin", os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err))
	}
	return &foreground{fd: dup, pgrp: pgrp}, nil
}

// handBack gives the terminal back to the program's group, unless some
// other live group (a job the child's own shell runs, say) holds it now.
// child is the child's group, or 0 if the spawn failed (the child may still
// have taken the terminal before its exec failed).
func (t *foreground) handBack(child int) {
	if t == nil {
		return
	}
	defer foregroundLent.Store(false)
	defer unix.Close(t.fd)
	cur, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP)
	if err != nil || cur == t.pgrp {
		return
	}
	if cur != child && unix.Kill(-cur, 0) != unix.ESRCH {
		return
	}
	// The program is in the background of its terminal now, and a
	// background tcsetpgrp raises SIGTTOU, which would stop the program,
	// unless the calling thread blocks it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var block, old unix.Sigset_t
	n := uint(syscall.SIGTTOU - 1)
	bits := uint(8 * unsafe.Sizeof(block.Val[0]))
	block.Val[n/bits] |= 1 << (n % bits)
	if unix.PthreadSigmask(unix.SIG_BLOCK, &block, &old) != nil {
		return
	}
	unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, t.pgrp)
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
}
