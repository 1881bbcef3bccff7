//go:build linux

package watchdog

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoCgroup2 reports that no cgroup v2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("cgroup v2 is not mounted")

// Cgroup2Mount finds where the cgroup v2 hierarchy is mounted, from
// /proc/self/mountinfo: on a hybrid layout it is not /sys/fs/cgroup.
var Cgroup2Mount = sync.OnceValues(func() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		return unescapeMountinfo(fields[4]), nil
	}
	return "", ErrNoCgroup2
})

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// SelfCgroup returns the program's cgroup v2 path, relative to the mount
// (as /proc/self/cgroup has it, starting with "/").
func SelfCgroup() (string, error) { return procCgroupPath(os.Getpid()) }

// ErrCgroupNotFound: /proc/self/cgroup names a path relative to the root of
// the program's cgroup namespace, which need not be the mount's root.
var ErrCgroupNotFound = errors.New("the program's cgroup is not where /proc/self/cgroup says under the cgroup2 mount (a cgroup namespace?)")

// SelfCgroupDir returns the directory of the program's cgroup, checked: its
// cgroup.procs lists the program. The check is done again only when
// /proc/self/cgroup changes (the program was moved).
func SelfCgroupDir() (string, error) {
	mount, err := Cgroup2Mount()
	if err != nil {
		return "", err
	}
	self, err := SelfCgroup()
	if err != nil {
		return "", err
	}
	checkedSelf.Lock()
	defer checkedSelf.Unlock()
	if self == checkedSelf.path {
		return checkedSelf.dir, checkedSelf.err
	}
	dir := filepath.Join(mount, self)
	pids, err := procsAt(unix.AT_FDCWD, dir)
	switch {
	case err != nil:
		return "", err // not remembered: it may be passing
	case !slices.Contains(pids, os.Getpid()):
		dir, err = "", ErrCgroupNotFound
	}
	checkedSelf.path, checkedSelf.dir, checkedSelf.err = self, dir, err
	return dir, err
}

// checkedSelf is the last /proc/self/cgroup path SelfCgroupDir checked.
var checkedSelf struct {
	sync.Mutex
	path, dir string
	err       error
}

// forkProbePath cannot be executed, with an error no fork gives: ENOTDIR.
const forkProbePath = "/dev/null/netrunner-fork-probe"

// ForkIntoWorks reports whether a child forked straight into the cgroup
// dirfd (clone3 with CLONE_INTO_CGROUP) lives past its birth. It fails where
// the program may not put processes there, and where the cgroup was removed
// or cannot take processes; and some kernels (6.18 here) SIGKILL such a
// child at once when the kill counts of the forking process's cgroup and of
// the target differ, that is when one was killed through cgroup.kill (or was
// below one) more often than the other. The probe child fails its exec at
// once: the exec's error comes back if it ran, none if it was killed first.
func ForkIntoWorks(dirfd int) bool {
	sys := &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: dirfd}
	pid, _, err := syscall.StartProcess(forkProbePath, []string{"netrunner-fork-probe"}, &syscall.ProcAttr{Sys: sys})
	if err != nil {
		return err == syscall.ENOTDIR
	}
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return false
		}
	}
}

// alignForkInto makes children forked into the cgroup dirfd, which the
// program just made, survive their birth (see ForkIntoWorks): a cgroup's
// kill count only grows, and cgroup.kill on an empty cgroup grows it and
// kills nothing, so it is written while the cgroup is seen empty, until the
// counts match, at most maxAlignKills times. It returns how many writes that
// took, or -1 if forks into it do not work.
func alignForkInto(dirfd int) int {
	for kills := 0; ; kills++ {
		if ForkIntoWorks(dirfd) {
			return kills
		}
		if pids, err := procsAt(dirfd, "."); kills == maxAlignKills || err != nil || len(pids) > 0 ||
			writeAt(dirfd, "cgroup.kill", "1") != nil {
			return -1
		}
	}
}

// maxAlignKills bounds the cgroup.kill writes that alignForkInto spends on a
// new cgroup: how often the program's cgroup may have been killed before.
const maxAlignKills = 8

// procCgroupPath reads a process's cgroup v2 path from /proc/PID/cgroup.
func procCgroupPath(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if p, ok := bytes.CutPrefix(line, []byte("0::")); ok && len(p) > 0 && p[0] == '/' {
			return string(p), nil
		}
	}
	return "", ErrNoCgroup2
}

// KillCgroup kills every process in the cgroup whose directory dirfd is
// open on, and waits until it is empty, at most timeout; it reports whether
// it is (a removed cgroup is). Through the descriptor, it reaches that
// cgroup only, even if its path has been removed and made again meanwhile.
//
// cgroup.kill (Linux 5.14+) kills the cgroup and its descendants, including
// what forks meanwhile and what left its process group. Without it, the
// cgroup is frozen (5.2+) while each process listed in cgroup.procs gets
// SIGKILL, until none is left; descendant cgroups are not walked, as
// netrunner puts each child in one leaf. The calling process is never
// killed. Killed processes leave cgroup.procs once they are zombies.
func KillCgroup(dirfd int, timeout time.Duration) bool {
	return killCgroup(dirfd, timeout, true)
}

func killCgroup(dirfd int, timeout time.Duration, tryKillFile bool) bool {
	byKill := tryKillFile && writeAt(dirfd, "cgroup.kill", "1") == nil
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if !byKill {
			writeAt(dirfd, "cgroup.freeze", "1")
		}
		pids, err := procsAt(dirfd, ".")
		if err != nil {
			return true // gone
		}
		if len(pids) == 0 {
			return true
		}
		if !byKill {
			for _, pid := range pids {
				if pid > 1 && pid != os.Getpid() {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
			writeAt(dirfd, "cgroup.freeze", "0")
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

// writeAt writes value to the file name in the directory dirfd.
func writeAt(dirfd int, name, value string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_, err = unix.Write(fd, []byte(value))
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

// procsAt lists the pids in cgroup.procs of the directory dir, relative to
// dirfd ("." for dirfd itself).
func procsAt(dirfd int, dir string) ([]int, error) {
	fd, err := unix.Openat(dirfd, dir+"/cgroup.procs", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "cgroup.procs")
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(sc.Text()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, sc.Err()
}
