//go:build linux

package netrunner

// The parent-death guard.
//
// Promise (API.md, Processes): if the Go program dies, even by SIGKILL, every
// child it started and everything in those children's process groups and
// cgroups is killed within a second, with nothing for the user to set up.
//
// PR_SET_PDEATHSIG cannot keep that promise: it fires when the OS thread that
// forked the child exits, not when the process does (golang/go#27505), and it
// reaches only the child, not the child's descendants. A subreaper does not
// help either, since it dies with the program. Something has to outlive the
// program, notice its death, and then clean up. That is the guard:
//
//   - One small watchdog process per Go program, started lazily by the first
//     guardWatch. It is the program's own binary, re-executed through
//     /proc/self/exe with guardEnv in its environment; the init function below
//     sees the variable and turns the process into the guard, which never
//     returns to the program's main.
//   - The program holds the write end of a pipe, opened O_CLOEXEC so that no
//     child ever inherits it; the guard holds the only read end, as its fd 3.
//     When the program dies, however it dies, the kernel closes the write end
//     and the guard reads EOF.
//   - Over the pipe the program tells the guard about every process group and
//     cgroup as it starts and ends (one short write(2) each). On EOF the guard
//     SIGKILLs every group still registered (kill(-pgid, SIGKILL)) and every
//     cgroup (cgroup.kill, or on kernels before 5.14 SIGKILL to each pid in
//     cgroup.procs until it is empty), then exits.
//
// The guard runs in a session of its own (so signals aimed at the program's
// process group or terminal, such as ^C, reach the program but not the
// guard), with /dev/null on fds 0-2 (it must not hold the program's stdout or
// stderr open: whoever reads them, `go test` for one, would wait for the guard
// after the program died; golang/go#23019), and it ignores SIGINT, SIGHUP,
// SIGTERM and SIGPIPE: it dies through the pipe's EOF, not through signals.
// Its working directory is "/" (it does not pin the program's), its comm is
// "netrunner-guard" (as ps -e, top and pgrep show it), and the program never
// waits for it: it lives exactly as long as the program. If it dies early
// (someone killed it), writes fail with EPIPE; the program then carries on
// without the protection (guardErr says why) and reaps the guard's zombie.
//
// Trade-off of re-executing the program's binary: every package
// initialisation of the program runs again in the guard before the init
// below takes over (Go runs the inits of all imported packages, and
// netrunner's own package-level variables and the inits of netrunner's files
// that sort before guard_linux.go, before this one). That costs a few
// milliseconds and a few MB of memory once per program, and an init with side
// effects (dialling a server, writing a file, printing; stdout is /dev/null
// here) has them twice. The alternatives are worse: a Go process cannot fork
// without exec, and shipping a separate helper binary would mean something
// for the user to install. Inits in this package must therefore stay cheap and
// free of side effects. The guard itself does as little as possible: it sets
// four signal dispositions, changes directory, names itself and blocks in
// read(2).
//
// Protocol: lines of text, each written with one write(2) under a mutex (the
// write end is non-blocking; see guardSend for a full pipe):
//
//	+g PGID\n    watch process group PGID (PGID > 1)
//	-g PGID\n    forget it
//	+c "DIR"\n   watch cgroup v2 directory DIR (absolute, Go-quoted)
//	-c "DIR"\n   forget it
//
// Watches are counted: a group or cgroup watched twice must be forgotten
// twice. Lines the guard does not understand are ignored.

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// guardEnv switches a process into guard mode when it holds guardEnvValue.
	guardEnv      = "NETRUNNER_GUARD"
	guardEnvValue = "1"
	// guardFd is the guard's read end of the control pipe.
	guardFd = 3
	// guardName is the guard's comm (at most 15 bytes).
	guardName = "netrunner-guard"
	// guardCgroupTimeout bounds the cgroup.procs fallback of the kill.
	guardCgroupTimeout = 2 * time.Second
	// guardCgroup2Magic is CGROUP2_SUPER_MAGIC, the f_type of cgroup2.
	guardCgroup2Magic = 0x63677270
)

// guard is the program's side of the guard.
var guard struct {
	once sync.Once
	mu   sync.Mutex // serialises writes; guards the fields below
	live bool       // fd is the write end of a working pipe
	fd   int
	pid  int   // the guard's pid, 0 if none was started or it was reaped
	err  error // why the program is unprotected, if it is
}

// init turns the process into the guard when guardEnv says so and fd 3 is
// a pipe. A variable set by mistake, without the pipe, is only removed.
func init() {
	v, ok := syscall.Getenv(guardEnv)
	if !ok {
		return
	}
	// Never let the variable reach anything this process starts.
	os.Unsetenv(guardEnv)
	if v == guardEnvValue && !guardSecureExec() && guardIsPipe(guardFd) {
		guardMain() // does not return
	}
}

// guardWatch tells the guard about a new process group. The guard is started
// on first use; if it cannot be started, guardWatch does nothing more (the
// children then lack the protection) and guardErr reports why.
func guardWatch(pgid int) {
	if pgid <= 1 {
		return // never let the guard kill(-1) or kill(0)
	}
	guard.once.Do(guardStart)
	guardSendInt('+', pgid)
}

// guardForget tells the guard the group is gone. It does not start the guard.
func guardForget(pgid int) {
	if pgid <= 1 {
		return
	}
	guardSendInt('-', pgid)
}

// guardWatchCgroup tells the guard about a cgroup v2 directory (an absolute
// path; anything else is ignored), starting the guard on first use.
func guardWatchCgroup(dir string) {
	if !filepath.IsAbs(dir) {
		return
	}
	guard.once.Do(guardStart)
	guardSendPath('+', dir)
}

// guardForgetCgroup tells the guard the cgroup is gone.
func guardForgetCgroup(dir string) {
	if !filepath.IsAbs(dir) {
		return
	}
	guardSendPath('-', dir)
}

// guardPid returns the pid of the guard process, 0 if none was started (or it
// died and was reaped: a dead guard's zombie is collected by the next call of
// any guard function).
func guardPid() int {
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if !guard.live {
		guardReapLocked()
	}
	return guard.pid
}

// guardErr reports why the program's children are not protected by the guard:
// it could not be started, or it died. Nil while the guard works (or before
// it was needed).
func guardErr() error {
	guard.mu.Lock()
	defer guard.mu.Unlock()
	return guard.err
}

func guardSendInt(op byte, n int) {
	var buf [32]byte
	b := append(buf[:0], op, 'g', ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '\n')
	guardSend(b)
}

func guardSendPath(op byte, dir string) {
	b := append(make([]byte, 0, len(dir)+8), op, 'c', ' ')
	b = strconv.AppendQuote(b, filepath.Clean(dir))
	b = append(b, '\n')
	guardSend(b)
}

// guardWriteTimeout is how long guardSend waits for room in a full pipe
// before it gives the guard up as unresponsive (a var for tests).
var guardWriteTimeout = 10 * time.Second

// guardSend writes one message. The pipe holds 64 KiB, thousands of
// messages, and the guard drains it at once; should it not (it was stopped,
// or is stuck in some package's init), guardSend waits up to
// guardWriteTimeout for room, then kills the useless guard rather than hang
// the program or drop messages (a dropped forget could make the guard kill
// a reused pgid later). A write to a dead guard fails with EPIPE (the Go
// runtime ignores SIGPIPE for descriptors other than 1 and 2). Either way
// the pipe is closed, guardErr says why, and every later call is a no-op.
func guardSend(msg []byte) {
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if !guard.live {
		guardReapLocked()
		return
	}
	var deadline time.Time
	for len(msg) > 0 {
		n, err := syscall.Write(guard.fd, msg)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if deadline.IsZero() {
				deadline = time.Now().Add(guardWriteTimeout)
			}
			wait := time.Until(deadline)
			if wait <= 0 {
				syscall.Kill(guard.pid, syscall.SIGKILL) // our unreaped child: the pid is still its own
				guardFailLocked(fmt.Errorf("parent-death guard (pid %d) unresponsive for %v, killed it", guard.pid, guardWriteTimeout))
				return
			}
			fds := []unix.PollFd{{Fd: int32(guard.fd), Events: unix.POLLOUT}}
			unix.Poll(fds, int(min(wait, time.Second)/time.Millisecond)+1)
			continue
		case err == nil && n <= 0:
			err = syscall.EIO // cannot happen on a pipe; don't spin on it
		}
		if err != nil {
			guardFailLocked(fmt.Errorf("parent-death guard (pid %d) is gone: %w", guard.pid, os.NewSyscallError("write", err)))
			return
		}
		msg = msg[n:]
	}
}

// guardFailLocked gives the guard up.
func guardFailLocked(err error) {
	syscall.Close(guard.fd)
	guard.live, guard.fd = false, -1
	guard.err = fmt.Errorf("netrunner: %w; children are no longer killed when the program dies", err)
	guardReapLocked()
}

// guardReapLocked collects the zombie of a dead guard, if it is one yet.
func guardReapLocked() {
	if guard.pid == 0 {
		return
	}
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(guard.pid, &ws, syscall.WNOHANG, nil)
	if pid == guard.pid || err == syscall.ECHILD {
		guard.pid = 0
	}
}

// guardStart starts the guard process, once.
func guardStart() {
	pid, fd, err := guardSpawn()
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if err != nil {
		guard.err = fmt.Errorf("netrunner: cannot start the parent-death guard, children will not be killed when the program dies: %w", err)
		return
	}
	guard.live, guard.fd, guard.pid = true, fd, pid
}

func guardSpawn() (pid, wfd int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, -1, os.NewSyscallError("pipe2", err)
	}
	r, w := p[0], p[1]
	defer syscall.Close(r)
	if err := syscall.SetNonblock(w, true); err != nil { // w's open file description only, not r's
		syscall.Close(w)
		return 0, -1, os.NewSyscallError("fcntl", err)
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		syscall.Close(w)
		return 0, -1, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	defer syscall.Close(null)

	environ := os.Environ()
	env := make([]string, 0, len(environ)+1)
	env = append(env, guardEnv+"="+guardEnvValue)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, guardEnv+"=") {
			env = append(env, kv)
		}
	}
	// argv[0] as the program's, so that its inits see what they expect.
	argv0 := "/proc/self/exe"
	if len(os.Args) > 0 && os.Args[0] != "" {
		argv0 = os.Args[0]
	}
	pid, err = syscall.ForkExec("/proc/self/exe", []string{argv0}, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(r)},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		syscall.Close(w)
		return 0, -1, &os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: err}
	}
	return pid, w, nil
}

// atSecure is AT_SECURE, the aux vector entry the kernel sets to 1 when it
// ran the program in secure-execution mode (setuid, setgid, file
// capabilities, an LSM transition).
const atSecure = 23

// guardSecureExec reports whether the program runs in secure-execution mode,
// where its environment, arguments and descriptors come from someone with
// less privilege than it has: then it must never act as the guard, or any
// user could have it kill what only the program may kill. It fails closed:
// an unreadable aux vector, or real and effective ids that differ, count as
// secure.
func guardSecureExec() bool {
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

// guardIsPipe reports whether fd is open on a pipe.
func guardIsPipe(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO
}

// guardTable is what the guard knows: watch counts by group and cgroup.
type guardTable struct {
	groups  map[int]int
	cgroups map[string]int
}

// guardMain is the guard process: it reads the control pipe until EOF, then
// kills what is still registered and exits.
func guardMain() {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE)
	syscall.Chdir("/")
	name := []byte(guardName + "\x00")
	// Init runs on the main thread, so this names the process.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0)

	t := guardTable{groups: map[int]int{}, cgroups: map[string]int{}}
	var buf [4096]byte
	var pending []byte
	for {
		n, err := syscall.Read(guardFd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 {
			break // EOF: the program is gone. (Any other error: we can no longer hear it.)
		}
		pending = t.feed(pending, buf[:n])
	}
	t.kill()
	os.Exit(0)
}

// feed applies the complete lines in pending+data and returns what is left
// of a line that has not ended yet (a read may split a line).
func (t *guardTable) feed(pending, data []byte) []byte {
	if len(pending) > 0 {
		pending = append(pending, data...)
		data = pending
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		t.apply(data[:i])
		data = data[i+1:]
	}
	if len(data) > 1<<20 {
		data = nil // not our protocol; drop it
	}
	return append(pending[:0], data...)
}

// apply applies one protocol line (without its newline).
func (t *guardTable) apply(line []byte) {
	if len(line) < 4 || line[2] != ' ' || (line[0] != '+' && line[0] != '-') {
		return
	}
	add, arg := line[0] == '+', string(line[3:])
	switch line[1] {
	case 'g':
		pgid, err := strconv.Atoi(arg)
		if err != nil || pgid <= 1 {
			return
		}
		guardCount(t.groups, pgid, add)
	case 'c':
		dir, err := strconv.Unquote(arg)
		if err != nil || !filepath.IsAbs(dir) {
			return
		}
		guardCount(t.cgroups, filepath.Clean(dir), add)
	}
}

func guardCount[K comparable](m map[K]int, k K, add bool) {
	switch {
	case add:
		m[k]++
	case m[k] > 1:
		m[k]--
	default:
		delete(m, k)
	}
}

// kill SIGKILLs every registered group and cgroup.
func (t *guardTable) kill() {
	for pgid := range t.groups {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	var slow []string
	for dir := range t.cgroups {
		if !guardCgroupKillable(dir) {
			continue
		}
		if !guardCgroupKill(dir) {
			slow = append(slow, dir)
		}
	}
	if len(slow) > 0 {
		guardKillCgroupProcs(slow, guardCgroupTimeout)
	}
}

// guardCgroupKillable reports whether dir is a cgroup v2 directory that may be
// killed wholesale: it must exist, be on cgroup2, and not be the root of its
// mount (the system's root cgroup, or a container's cgroup-namespace root,
// which holds the guard too).
func guardCgroupKillable(dir string) bool {
	var fs syscall.Statfs_t
	if syscall.Statfs(dir, &fs) != nil || fs.Type != guardCgroup2Magic {
		return false
	}
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(dir+"/..", &parent) != nil {
		return false
	}
	return st.Dev == parent.Dev && st.Ino != parent.Ino
}

// guardCgroupKill writes "1" to dir/cgroup.kill (Linux 5.14+): the kernel then
// kills every process in the cgroup and its descendants, including any forked
// meanwhile. It reports whether that was done or is unnecessary (dir gone).
func guardCgroupKill(dir string) bool {
	if writeCgroupFile(dir+"/cgroup.kill", "1") == nil {
		return true
	}
	var st syscall.Stat_t
	return syscall.Stat(dir, &st) == syscall.ENOENT
}

// guardKillCgroupProcs is the fallback without cgroup.kill: SIGKILL every pid
// in each dir's cgroup.procs, with the cgroup frozen meanwhile where the
// kernel can (5.2+) so that nothing forks, and again and again until they
// are all empty or timeout has passed. Exited processes are not listed in
// cgroup.procs, zombies included. The descendants of dir are not walked:
// netrunner puts each child in one leaf cgroup.
func guardKillCgroupProcs(dirs []string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	self := os.Getpid()
	dirs = append([]string(nil), dirs...)
	for {
		left := dirs[:0]
		for _, dir := range dirs {
			writeCgroupFile(dir+"/cgroup.freeze", "1")
			b, err := os.ReadFile(dir + "/cgroup.procs")
			if err != nil {
				continue // gone
			}
			killed := 0
			for _, f := range strings.Fields(string(b)) {
				pid, err := strconv.Atoi(f)
				if err != nil || pid <= 1 || pid == self {
					continue
				}
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
			writeCgroupFile(dir+"/cgroup.freeze", "0")
			if killed > 0 {
				left = append(left, dir)
			}
		}
		dirs = left
		if len(dirs) == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
