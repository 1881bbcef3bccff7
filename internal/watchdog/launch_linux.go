//go:build linux

package watchdog

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errNoProc: without /proc, the program cannot re-execute itself. It may be
// mounted later, so this is tried again.
var errNoProc = errors.New("/proc is not mounted")

// launchable reports why the watchdog cannot be this program re-executed
// from /proc/self/exe, for good: in secure-execution mode; in a c-shared, c-archive or plugin build,
// and when the program was started through the dynamic loader (ld.so
// prog), /proc/self/exe is the host program or the loader, which would be run
// with the program's arguments. Without /proc nothing can be checked.
func launchable() error {
	// A program in secure-execution mode cannot tell its own watchdog from a
	// copy started by anyone (see secureExec): the copy would run main
	// again, with the program's privileges, and its first Start would do the
	// same.
	if secureExec() {
		return errors.New("no watchdog in secure-execution mode (setuid, setgid or file capabilities): a re-executed copy of the program could not trust its environment; children are not killed when the program dies")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if err := buildModeErr(bi.Settings); err != nil {
			return err
		}
	}
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return fmt.Errorf("cannot start the watchdog: %w (%w); children are not killed when the program dies", errNoProc, &os.PathError{Op: "stat", Path: "/proc/self/exe", Err: err})
	}
	dev, ino, err := codeFile()
	if err != nil {
		return fmt.Errorf("cannot start the watchdog: %w; children are not killed when the program dies", err)
	}
	if uint64(exe.Dev) != dev || uint64(exe.Ino) != ino {
		return errors.New("no watchdog: /proc/self/exe is not the file this code was loaded from (started through the dynamic loader, or loaded into another program); children are not killed when the program dies")
	}
	return nil
}

// buildModeErr refuses the build modes in which the program is loaded into
// another one.
func buildModeErr(settings []debug.BuildSetting) error {
	for _, s := range settings {
		if s.Key == "-buildmode" && (s.Value == "c-shared" || s.Value == "c-archive" || s.Value == "plugin") {
			return fmt.Errorf("no watchdog in a -buildmode=%s program (/proc/self/exe is the host program): children are not killed when the program dies", s.Value)
		}
	}
	return nil
}

// codeFile finds the device and inode of the file mapped where this
// package's code is, from /proc/self/maps.
func codeFile() (dev, ino uint64, err error) {
	pc := uint64(reflect.ValueOf(launchable).Pointer())
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset major:minor inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || pc < start || pc >= end {
			continue
		}
		major, minor, _ := strings.Cut(fields[3], ":")
		maj, err1 := strconv.ParseUint(major, 16, 32)
		mnr, err2 := strconv.ParseUint(minor, 16, 32)
		ino, err3 := strconv.ParseUint(fields[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, 0, fmt.Errorf("/proc/self/maps: %q: %w", sc.Text(), err)
		}
		return unix.Mkdev(uint32(maj), uint32(mnr)), ino, nil
	}
	return 0, 0, fmt.Errorf("/proc/self/maps: no mapping holds the program's code (%v)", sc.Err())
}

// stopLocked closes the pipes and reaps the watchdog, killing it first
// unless it has exited already. It describes how the watchdog ended, if it
// did so by itself.
func stopLocked(cause error) string {
	unix.Close(state.ctl)
	unix.Close(state.reply)
	state.ctl, state.reply, state.awaiting = -1, -1, nil
	if state.pid == 0 {
		return ""
	}
	pid := state.pid
	state.pid = 0
	// A watchdog whose pipe ends are closed is exiting: it closes its
	// descriptors a moment before it becomes a zombie.
	var grace time.Time
	if errors.Is(cause, errReplyClosed) || errors.Is(cause, unix.EPIPE) {
		grace = time.Now().Add(time.Second)
	}
	var ws syscall.WaitStatus
	for {
		if p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); p == pid {
			return " (" + describe(ws) + ")"
		}
		if time.Now().After(grace) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Our unreaped child: the pid is still its own.
	syscall.Kill(pid, syscall.SIGKILL)
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return ""
		}
	}
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "it was killed by " + unix.SignalName(ws.Signal())
	}
	return "it exited with status " + strconv.Itoa(ws.ExitStatus())
}

// startLocked starts a watchdog and waits until it is ready.
func startLocked() error {
	var ctl, reply [2]int
	if err := unix.Pipe2(ctl[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("cannot start the watchdog: %w", os.NewSyscallError("pipe2", err))
	}
	if err := unix.Pipe2(reply[:], unix.O_CLOEXEC); err != nil {
		unix.Close(ctl[0])
		unix.Close(ctl[1])
		return fmt.Errorf("cannot start the watchdog: %w", os.NewSyscallError("pipe2", err))
	}
	pid, err := spawn(ctl[0], reply[1])
	unix.Close(ctl[0])
	unix.Close(reply[1])
	state.ctl, state.reply, state.pid = ctl[1], reply[0], pid
	if err == nil {
		// Only the program's ends: the watchdog's blocking reads are its own.
		err = errors.Join(unix.SetNonblock(state.ctl, true), unix.SetNonblock(state.reply, true))
	}
	if err != nil {
		stopLocked(nil)
		return fmt.Errorf("cannot start the watchdog: %w", err)
	}
	start := time.Now()
	b, err := readReplyLocked(ReadyTimeout)
	if err == nil && b != replyReady {
		err = fmt.Errorf("it said %q instead of being ready", b)
	}
	if err != nil {
		status := stopLocked(err)
		return fmt.Errorf("the watchdog (pid %d) did not become ready after %v: %w%s (a package init of the program may end or hold up the re-executed program); children are not killed when the program dies",
			pid, time.Since(start).Round(time.Millisecond), err, status)
	}
	return nil
}

// spawn starts the watchdog: the program's binary with the program's
// arguments (so that inits validating them see what they expect).
func spawn(ctl, reply int) (int, error) {
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	defer unix.Close(null)
	env := []string{envVar + "=" + envValue}
	for _, kv := range os.Environ() {
		if len(kv) <= len(envVar) || kv[:len(envVar)+1] != envVar+"=" {
			env = append(env, kv)
		}
	}
	argv := os.Args
	if len(argv) == 0 {
		argv = []string{"/proc/self/exe"}
	}
	pid, err := syscall.ForkExec("/proc/self/exe", argv, &syscall.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(ctl), uintptr(reply)},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, &os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: err}
	}
	return pid, nil
}
