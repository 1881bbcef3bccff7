//go:build linux

package watchdog

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cgroupKillTimeout bounds the wait for a killed cgroup to empty.
const cgroupKillTimeout = 2 * time.Second

// table is what the watchdog knows, all of it checked when registered.
type table struct {
	parent    int         // the watchdog's real parent: the program it acts for
	parentIs  func() bool // whether the watchdog's parent is still that
	self      int         // the watchdog's pid
	mount     string      // the cgroup v2 mount, "" if none
	ownCgroup string      // the watchdog's cgroup directory, "" if unknown
	groups    map[int]*group
	cgroups   map[string]*cgroupEntry
}

// A group is a registered process group, pinned by a pidfd of its leader.
type group struct {
	pidfd int
	count int
}

// A cgroupEntry is a registered cgroup, pinned by a descriptor of its
// directory: a cgroup removed and made again under the same name by someone
// else is another directory, which the watchdog never touches.
type cgroupEntry struct {
	fd       int
	dev, ino uint64
	count    int
	created  int // innermost levels the program made, removed after the kill
}

func newTable(parent int) *table {
	t := &table{
		parent:   parent,
		parentIs: func() bool { return os.Getppid() == parent },
		self:     os.Getpid(),
		groups:   map[int]*group{},
		cgroups:  map[string]*cgroupEntry{},
	}
	if mount, err := Cgroup2Mount(); err == nil {
		t.mount = mount
		if own, err := SelfCgroupDir(); err == nil {
			t.ownCgroup = own
		}
	}
	return t
}

// apply applies one protocol line (without its newline) and returns the
// reply byte for a '+' line, else 0.
func (t *table) apply(line []byte) byte {
	op, rest, _ := bytes.Cut(line, []byte(" "))
	accepted := false
	switch string(op) {
	case "+g":
		pgid, err := strconv.Atoi(string(rest))
		accepted = err == nil && t.addGroup(pgid)
	case "-g":
		if pgid, err := strconv.Atoi(string(rest)); err == nil {
			t.forgetGroup(pgid)
		}
	case "+c":
		if k, quoted, ok := strings.Cut(string(rest), " "); ok {
			created, err1 := strconv.Atoi(k)
			dir, err2 := strconv.Unquote(quoted)
			accepted = err1 == nil && err2 == nil && t.addCgroup(created, dir)
		}
	case "-c":
		if dir, err := strconv.Unquote(string(rest)); err == nil {
			t.forgetCgroup(dir)
		}
	}
	switch {
	case len(op) == 0 || op[0] != '+':
		return 0
	case accepted:
		return replyAccepted
	}
	return replyRefused
}

// addGroup accepts group pgid if its leader (pid pgid) is a child of the
// parent. The leader is pinned by a pidfd, opened before its parent is read
// and checked again afterwards, so the check is of the process the pidfd
// holds. A leader that already left its group (setpgid, setsid) is accepted
// too: it is the parent's child, killed through its pidfd.
func (t *table) addGroup(pgid int) bool {
	if g := t.groups[pgid]; g != nil {
		g.count++
		return true
	}
	if pgid <= 1 || pgid == t.self {
		return false
	}
	parent := t.parent
	if !t.parentIs() {
		// The program died with this line still in the pipe (it does not
		// wait for answers): its children went to the reaper that took the
		// watchdog too. Only the program held the pipe's write end.
		parent = os.Getppid()
	}
	fd, err := pidfdOpen(pgid)
	if err == unix.ESRCH {
		return t.addLeaderless(pgid)
	}
	if err != nil {
		return false
	}
	ppid, err := procParent(pgid)
	if err != nil || ppid != parent || !pidfdAlive(fd) {
		unix.Close(fd)
		return false
	}
	t.groups[pgid] = &group{pidfd: fd, count: 1}
	return true
}

// addLeaderless takes a group whose leader is gone by the time its line is
// read: a quick child the program reaped already, or one the kernel killed
// with the program (Pdeathsig) and its reaper reaped. Its parent cannot be
// checked any more; but the watchdog has the program's credentials, and
// only the program writes to it, so it can do nothing the program could not.
// A group with members left is kept, pinned by nothing: while a member
// lives, the number names that group, and kill leaves it alone once a
// newcomer holds the leader's pid. An empty group needs nothing.
func (t *table) addLeaderless(pgid int) bool {
	if unix.Kill(-pgid, 0) == nil {
		t.groups[pgid] = &group{pidfd: -1, count: 1}
	}
	return true
}

func (t *table) forgetGroup(pgid int) {
	g := t.groups[pgid]
	if g == nil {
		return
	}
	if g.count--; g.count == 0 {
		unix.RawSyscall(unix.SYS_CLOSE, uintptr(g.pidfd), 0, 0)
		delete(t.groups, pgid)
	}
}

// addCgroup accepts dir while the parent has the watchdog's credentials
// (sameCredentials): then killing the cgroup is something the parent could do
// itself, and the watchdog lends it nothing. That lets the program register a
// cgroup before it forks a child into it, so the child is covered from its
// first instruction. The cgroup must be on cgroup2, below the mount's root,
// and not hold the watchdog (nor, so, the parent, whose cgroup the watchdog
// started in).
func (t *table) addCgroup(created int, dir string) bool {
	if !filepath.IsAbs(dir) {
		return false
	}
	dir = filepath.Clean(dir)
	if e := t.cgroups[dir]; e != nil {
		e.count++
		return true
	}
	if !strings.HasPrefix(dir, t.mount+"/") || t.ownCgroup == "" || within(t.ownCgroup, dir) || !t.parentIs() ||
		!sameCredentials(t.parent) || !t.parentIs() {
		return false
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	var fs unix.Statfs_t
	var st, now unix.Stat_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC || unix.Fstat(fd, &st) != nil ||
		unix.Stat(dir, &now) != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(fd)
		return false
	}
	depth := strings.Count(strings.TrimPrefix(dir, t.mount), "/")
	t.cgroups[dir] = &cgroupEntry{fd: fd, dev: uint64(st.Dev), ino: uint64(st.Ino), count: 1, created: min(max(created, 0), depth)}
	return true
}

func (t *table) forgetCgroup(dir string) {
	dir = filepath.Clean(dir)
	e := t.cgroups[dir]
	if e == nil {
		return
	}
	if e.count--; e.count == 0 {
		unix.Close(e.fd)
		delete(t.cgroups, dir)
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// procParent reads a process's parent from /proc/PID/stat. It runs
// once per child the program starts, so it stays cheap: raw system calls
// (short ones, that never block) into a buffer on the stack, without the
// runtime's bookkeeping for calls that may block, which on a busy machine
// costs the watchdog more than the reading.
func procParent(pid int) (ppid int, err error) {
	var path [32]byte
	p := append(strconv.AppendInt(append(path[:0], "/proc/"...), int64(pid), 10), "/stat\x00"...)
	fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(fdcwd), uintptr(unsafe.Pointer(&p[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	var buf [1024]byte
	n, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	b := buf[:n]
	// pid (comm) state ppid ...; comm may hold anything, even ')'.
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 2 {
		return 0, syscall.EINVAL
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, syscall.EINVAL
	}
	return ppid, nil
}

// fdcwd is AT_FDCWD, a variable so that it converts to a uintptr argument.
var fdcwd = unix.AT_FDCWD

// pidfdOpen and pidfdAlive are unix.PidfdOpen and a signal 0 through a
// pidfd (whether the process is unreaped), as raw system calls.
func pidfdOpen(pid int) (int, error) {
	fd, _, errno := unix.RawSyscall(unix.SYS_PIDFD_OPEN, uintptr(pid), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func pidfdAlive(fd int) bool {
	_, _, errno := unix.RawSyscall6(unix.SYS_PIDFD_SEND_SIGNAL, uintptr(fd), 0, 0, 0, 0, 0)
	return errno == 0
}

// kill SIGKILLs every registered group and cgroup, then removes the
// cgroup directories the program created.
//
// A group whose leader is unreaped (alive or a zombie; the pidfd can still
// signal it) holds its pid, so kill(-pgid) reaches that group and no other.
// Once the leader is reaped (the program reaps, then ends the leftovers, then
// forgets the group), the number stays reserved while any member of the
// group lives; it can only name another group after they are all gone and
// the pid allocator has come round to it again. If a process with that pid
// exists now, it is such a newcomer (ours was reaped) and the group is left
// alone; otherwise kill(-pgid) reaches the leftovers.
func (t *table) kill() {
	for pgid, g := range t.groups {
		if pidfdAlive(g.pidfd) {
			// The leader may have left its group (setpgid, setsid): it is
			// reached through its pidfd, the rest of the group by pgid.
			unix.RawSyscall6(unix.SYS_PIDFD_SEND_SIGNAL, uintptr(g.pidfd), uintptr(unix.SIGKILL), 0, 0, 0, 0)
			unix.Kill(-pgid, unix.SIGKILL)
			continue
		}
		if fd, err := pidfdOpen(pgid); err == nil {
			unix.Close(fd)
			continue
		}
		unix.Kill(-pgid, unix.SIGKILL)
	}
	var remove []string
	for dir, e := range t.cgroups {
		if !KillCgroup(e.fd, cgroupKillTimeout) {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil || uint64(st.Dev) != e.dev || uint64(st.Ino) != e.ino {
			continue // removed meanwhile, and perhaps made again by someone else
		}
		for d, i := dir, 0; i < e.created; d, i = filepath.Dir(d), i+1 {
			remove = append(remove, d)
		}
	}
	// Innermost first: a cgroup with children cannot be removed.
	slices.SortFunc(remove, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	for _, d := range slices.Compact(remove) {
		unix.Rmdir(d)
	}
}

// close releases the descriptors the table holds.
func (t *table) close() {
	for _, g := range t.groups {
		unix.Close(g.pidfd)
	}
	for _, e := range t.cgroups {
		unix.Close(e.fd)
	}
	clear(t.groups)
	clear(t.cgroups)
}
