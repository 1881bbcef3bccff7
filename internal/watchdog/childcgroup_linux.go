//go:build linux

package watchdog

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A child registered by its process group after its fork runs unregistered
// from its exec until the line is written: should the program die then,
// what the child forked meanwhile would outlive it. So where it can, the
// program makes one cgroup for all its children, below its own, registers it
// before the first child, and the root package forks every child into it
// (clone3 with CLONE_INTO_CGROUP): each child is in a watched cgroup from its
// first instruction, with everything it ever forks, even what leaves its
// process group or session, and no line is written per child. Where it
// cannot (no cgroup v2, no write access to the program's cgroup, a kernel
// before 5.7, a threaded cgroup, a kernel that kills what is forked into it
// and a cgroup that cannot be levelled), children are registered one by one.
type childCgroup struct {
	made   bool            // tried since the last was given up
	makes  int             // tries, up to maxChildCgroups
	cur    *ChildCgroupRef // nil if none is in use
	reg    *registration
	prefix string // <the program's cgroup>/netrunner-PID-NS-, once one was made
	kills  int    // cgroup.kill writes a new cgroup needed (see alignForkInto); -1 unknown
}

// A ChildCgroupRef is the children's cgroup as a fork uses it: its directory
// descriptor stays open until every fork that took it is done, even if the
// cgroup is given up meanwhile.
type ChildCgroupRef struct {
	dir   string
	fd    int
	users atomic.Int32 // the program's own hold while it is in use, and forks
}

// FD returns the cgroup's directory descriptor, for CLONE_INTO_CGROUP.
func (r *ChildCgroupRef) FD() int { return r.fd }

// Done says a fork that took r is over.
func (r *ChildCgroupRef) Done() {
	if r.users.Add(-1) == 0 {
		unix.Close(r.fd)
	}
}

// Refused stops forking into r because the kernel refused to (removed by
// someone, made threaded, given controllers, or no longer writable by the
// program): the next ChildCgroup makes another. r stays registered, so that
// the children in it still die with the program and it is removed then.
func (r *ChildCgroupRef) Refused() {
	state.mu.Lock()
	defer state.mu.Unlock()
	c := &state.childCgroup
	if c.cur == r {
		c.cur.Done()
		c.cur, c.reg, c.made = nil, nil, false
	}
}

// maxChildCgroups bounds how many children's cgroups a program makes, when
// something keeps removing them.
const maxChildCgroups = 4

// ChildCgroup returns the children's cgroup to fork a child into, or nil
// while the running watchdog does not watch one. Call Done on it once the
// fork is over.
func ChildCgroup() *ChildCgroupRef {
	state.mu.Lock()
	defer state.mu.Unlock()
	c := &state.childCgroup
	if !c.made && state.ctl >= 0 {
		// The last one was given up: make another, and wait for the
		// watchdog to accept it.
		if makeChildCgroupLocked(); c.cur != nil {
			sendLocked(c.reg, appendCgroup(nil, 1, c.cur.dir))
			hearLocked(true)
			dropRefusedChildCgroupLocked()
		}
	}
	if c.cur == nil || !c.reg.accepted || state.ctl < 0 {
		return nil
	}
	c.cur.users.Add(1)
	return c.cur
}

// FreshCgroupsForkable reports whether a child forked straight into a cgroup
// the program has just made lives (see ForkIntoWorks), as learnt when the
// children's cgroup was made; known is false when none was.
func FreshCgroupsForkable() (ok, known bool) {
	state.mu.Lock()
	defer state.mu.Unlock()
	k := state.childCgroup.kills
	return k == 0, k >= 0
}

// ChildCgroupPrefix returns the path that the program's children's cgroups
// start with, <its cgroup>/netrunner-PID-NS-, made or not; "" if the
// program's cgroup is unknown.
func ChildCgroupPrefix() string {
	state.mu.Lock()
	prefix := state.childCgroup.prefix
	state.mu.Unlock()
	if prefix != "" {
		return prefix
	}
	own, err := SelfCgroupDir()
	if err != nil {
		return ""
	}
	return childCgroupPrefixIn(own)
}

// childCgroupPrefixIn names the children's cgroups in own:
// netrunner-PID-NS-N, where NS, the inode of the pid namespace, tells
// programs with the same pid in different namespaces apart, and N counts
// the cgroups the program made.
func childCgroupPrefixIn(own string) string {
	return filepath.Join(own, childCgroupStem+strconv.Itoa(unix.Getpid())+"-"+strconv.FormatUint(pidNamespace(), 10)) + "-"
}

const childCgroupStem = "netrunner-"

// pidNamespace returns the inode of the program's pid namespace, 0 if unknown.
var pidNamespace = sync.OnceValue(func() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) != nil {
		return 0
	}
	return st.Ino
})

// makeChildCgroupLocked makes the children's cgroup, unless it was made
// already, and adds it to the registrations, which Ensure sends.
func makeChildCgroupLocked() {
	c := &state.childCgroup
	if c.made || c.makes == maxChildCgroups {
		return
	}
	c.made = true
	c.makes++
	own, err := SelfCgroupDir()
	// Forking into a cgroup takes write access to cgroup.procs where the
	// program is, the common ancestor of both cgroups.
	if err != nil || !CloneIntoCgroup() || unix.Access(filepath.Join(own, "cgroup.procs"), unix.W_OK) != nil {
		return
	}
	removeStaleChildCgroups(own)
	c.prefix = childCgroupPrefixIn(own)
	dir := c.prefix + strconv.Itoa(c.makes)
	if err := unix.Mkdir(dir, 0o755); err != nil {
		return
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	kills := -1
	if err == nil && isDomainCgroup(fd) {
		kills = alignForkInto(fd)
	}
	if kills < 0 {
		if err == nil {
			unix.Close(fd)
		}
		unix.Rmdir(dir)
		return
	}
	c.kills = kills
	c.cur = &ChildCgroupRef{dir: dir, fd: fd}
	c.cur.users.Store(1)
	c.reg = &registration{count: 1, created: 1, what: "the children's cgroup " + dir}
	state.cgroups[dir] = c.reg
}

// removeStaleChildCgroups removes the empty children's cgroups that programs
// of this pid namespace no longer running left in own: their watchdog was
// killed too, or gave up. (rmdir fails on a cgroup that is not empty.)
func removeStaleChildCgroups(own string) {
	entries, err := os.ReadDir(own)
	if err != nil || pidNamespace() == 0 {
		return
	}
	for _, e := range entries {
		f := strings.Split(strings.TrimPrefix(e.Name(), childCgroupStem), "-")
		if !e.IsDir() || !strings.HasPrefix(e.Name(), childCgroupStem) || len(f) != 3 ||
			f[1] != strconv.FormatUint(pidNamespace(), 10) {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n <= 0 {
			continue
		}
		if n == unix.Getpid() || unix.Kill(n, 0) == unix.ESRCH {
			unix.Rmdir(filepath.Join(own, e.Name()))
		}
	}
}

// dropRefusedChildCgroupLocked gives the children's cgroup up if the running
// watchdog, whose answer has come, refused it.
func dropRefusedChildCgroupLocked() {
	if r := state.childCgroup.reg; r != nil && !r.accepted && state.ctl >= 0 {
		dropChildCgroupLocked()
	}
}

// dropChildCgroupLocked gives the children's cgroup up.
func dropChildCgroupLocked() {
	c := &state.childCgroup
	if c.cur == nil {
		return
	}
	if state.ctl >= 0 {
		writeLocked(append(strconv.AppendQuote([]byte("-c "), c.cur.dir), '\n'))
	}
	forgetChildCgroupLocked()
}

// releaseChildCgroupLocked removes the children's cgroup while it is empty,
// when its watchdog has failed: none is left behind should no replacement
// come, and the next Ensure makes another. One that children live in stays,
// for the replacement to watch.
func releaseChildCgroupLocked() {
	c := &state.childCgroup
	if c.cur != nil && unix.Rmdir(c.cur.dir) == nil {
		forgetChildCgroupLocked()
		c.made = false
	}
}

func forgetChildCgroupLocked() {
	c := &state.childCgroup
	delete(state.cgroups, c.cur.dir)
	unix.Rmdir(c.cur.dir) // fails while children live in it; they keep it
	c.cur.Done()
	c.cur, c.reg = nil, nil
}

// isDomainCgroup reports whether a process can be put in the cgroup dirfd:
// below a threaded cgroup, a new one is "domain invalid" until made threaded.
func isDomainCgroup(dirfd int) bool {
	fd, err := unix.Openat(dirfd, "cgroup.type", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var b [32]byte
	n, err := unix.Read(fd, b[:])
	return err == nil && strings.TrimSpace(string(b[:max(n, 0)])) == "domain"
}

// CloneIntoCgroup reports whether the kernel can fork a child straight into a
// cgroup (clone3 with CLONE_INTO_CGROUP, Linux 5.7).
var CloneIntoCgroup = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	release := unix.ByteSliceToString(u.Release[:])
	major, rest, _ := strings.Cut(release, ".")
	minor := rest[:len(rest)-len(strings.TrimLeft(rest, "0123456789"))] // "7-rc1", "18.44-fc"
	maj, err1 := strconv.Atoi(major)
	mnr, err2 := strconv.Atoi(minor)
	return err1 == nil && err2 == nil && (maj > 5 || maj == 5 && mnr >= 7)
})
