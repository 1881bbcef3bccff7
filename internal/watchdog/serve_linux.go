//go:build linux

package watchdog

import (
	"bytes"
	"os"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// init turns the process into the watchdog when envVar says so, fds 3 and
// 4 are pipes, and the process is not in secure-execution mode. The
// variable is removed in any case, so nothing this process starts sees it.
func init() {
	v, ok := syscall.Getenv(envVar)
	if !ok {
		return
	}
	os.Unsetenv(envVar)
	if v == envValue && !secureExec() && isPipe(ctlFd) && isPipe(replyFd) {
		serve() // does not return
	}
}

// atSecure is AT_SECURE, the aux vector entry the kernel sets to 1 when it
// ran the program in secure-execution mode (setuid, setgid, file
// capabilities, an LSM transition).
const atSecure = 23

// secureExec reports whether the program runs in secure-execution mode,
// where its environment, arguments and descriptors come from someone with
// less privilege than it has: then it must never act as the watchdog, or any
// user could have it kill what only the program may kill. It fails closed:
// an unreadable aux vector, or real and effective ids that differ, count as
// secure.
func secureExec() bool {
	if os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid() {
		return true
	}
	auxv, err := unix.Auxv()
	if err != nil {
		return true
	}
	for _, kv := range auxv {
		if kv[0] == atSecure {
			return kv[1] != 0
		}
	}
	return true
}

// isPipe reports whether fd is open on a pipe.
func isPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// serve is the watchdog: it confirms it is ready, then applies the control
// pipe's lines until EOF, kills what is still registered and exits.
func serve() {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE)
	syscall.Chdir("/")
	name := []byte(Name + "\x00")
	// Init runs on the main thread, so this names the process.
	unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0)

	t := newTable(os.Getppid())
	// Reading through the runtime's poller parks this goroutine between
	// lines; a blocking read(2) would have the runtime take it for one that
	// hogs its thread and interrupt it with a signal on every line, which
	// costs more than the line. The read end is the watchdog's alone.
	unix.SetNonblock(ctlFd, true)
	ctl := os.NewFile(ctlFd, "control pipe")
	reply(replyReady)
	var buf [4096]byte
	var pending []byte
	for {
		n, err := ctl.Read(buf[:])
		if n == 0 && err != nil {
			break // EOF: the program is gone. (Any other error: we can no longer hear it.)
		}
		var exit bool
		pending, exit = feed(pending, buf[:n], func(line []byte) {
			if r := t.apply(line); r != 0 {
				reply(r)
			}
		})
		if exit {
			os.Exit(0)
		}
	}
	t.kill()
	os.Exit(0)
}

func reply(b byte) {
	for {
		if _, err := unix.Write(replyFd, []byte{b}); err != unix.EINTR {
			return
		}
	}
}

// feed hands each complete line of pending+data to apply and returns what is
// left of a line that has not ended yet (a read may split a line), and
// whether the exit line came.
func feed(pending, data []byte, apply func([]byte)) ([]byte, bool) {
	if len(pending) > 0 {
		pending = append(pending, data...)
		data = pending
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if string(data[:i]) == "x" {
			return nil, true
		}
		apply(data[:i])
		data = data[i+1:]
	}
	if len(data) > 1<<20 {
		data = nil // not our protocol; drop it
	}
	return append(pending[:0], data...), false
}
