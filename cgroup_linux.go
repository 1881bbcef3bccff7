package netrunner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
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

// A cgroup is the cgroup v2 group a child starts in, from before the spawn
// until the process is done.
type cgroup struct {
	dir     string
	fd      int      // the group's directory, for CLONE_INTO_CGROUP
	created []string // directories we made, innermost first: removed at the end
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted, from
// /proc/self/mountinfo: on a hybrid layout it is not /sys/fs/cgroup.
var cgroup2Mount = sync.OnceValues(func() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cgroup v2: %w (%v)", ErrUnsupported, err)
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
	return "", fmt.Errorf("cgroup v2 is not mounted: %w", ErrUnsupported)
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

func (c *Cmd) validatePlatform() error {
	name := c.name()
	if c.Cgroup == "" {
		if len(c.CgroupSettings) > 0 {
			return invalidf(name, "CgroupSettings without Cgroup")
		}
		return nil
	}
	if strings.IndexByte(c.Cgroup, 0) >= 0 {
		return invalidf(name, "Cgroup contains a NUL byte")
	}
	if filepath.IsAbs(c.Cgroup) {
		return invalidf(name, "Cgroup %q is absolute; it is relative to the cgroup2 mount", c.Cgroup)
	}
	for _, part := range strings.Split(c.Cgroup, "/") {
		if part == ".." || part == "." {
			return invalidf(name, "Cgroup %q contains %q", c.Cgroup, part)
		}
	}
	for file, value := range c.CgroupSettings {
		if file == "" || file == "." || file == ".." || strings.ContainsAny(file, "/\x00") {
			return invalidf(name, "CgroupSettings key %q is not a file name", file)
		}
		if strings.IndexByte(value, 0) >= 0 {
			return invalidf(name, "CgroupSettings[%q] contains a NUL byte", file)
		}
	}
	return nil
}

// openCgroup creates the group if missing and writes the settings, all
// before anything is spawned; on error nothing it made is left behind.
func (c *Cmd) openCgroup() (*cgroup, error) {
	if c.Cgroup == "" {
		return nil, nil
	}
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{dir: filepath.Join(mount, filepath.Clean(c.Cgroup)), fd: -1}
	if err := cg.setUp(mount, c.CgroupSettings); err != nil {
		cg.remove()
		return nil, err
	}
	guardWatchCgroup(cg.dir)
	return cg, nil
}

func (cg *cgroup) setUp(mount string, settings map[string]string) error {
	if err := cg.mkdirAll(mount); err != nil {
		return err
	}
	// Settings are written in a fixed order so that a failure is repeatable.
	for _, f := range slices.Sorted(maps.Keys(settings)) {
		if err := writeCgroupFile(filepath.Join(cg.dir, f), settings[f]); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = missingSetting(mount, cg.dir, f, err)
			}
			return fmt.Errorf("cgroup setting %s: %w", f, err)
		}
	}
	fd, err := unix.Open(cg.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: cg.dir, Err: err}
	}
	cg.fd = fd
	return nil
}

// mkdirAll makes the group and any missing parents, noting which it made.
// Another process may be making or removing the same parents (siblings
// starting or ending): a directory made meanwhile is theirs, and one removed
// meanwhile is made again.
func (cg *cgroup) mkdirAll(mount string) error {
	for attempt := 0; ; attempt++ {
		var missing []string
		for d := cg.dir; d != mount; d = filepath.Dir(d) {
			if _, err := os.Stat(d); err == nil {
				break
			}
			missing = append(missing, d)
		}
		err := cg.mkdirs(missing)
		if err == nil || !errors.Is(err, os.ErrNotExist) || attempt == 3 {
			return err
		}
	}
}

func (cg *cgroup) mkdirs(missing []string) error {
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		switch {
		case err == nil:
			cg.created = append([]string{missing[i]}, cg.created...)
		case errors.Is(err, os.ErrExist):
		case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS):
			return fmt.Errorf("cgroup: %w (%v)", ErrUnsupported, err)
		default:
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	return nil
}

// writeCgroupFile writes one value; the files exist already, so a missing
// one is an unknown setting.
func writeCgroupFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// end kills every process left in the group and removes what we created.
// cgroup.kill reaches processes that left the process group (setsid); on
// kernels without it, the group is frozen so nothing forks while each
// member is killed.
func (cg *cgroup) end() {
	if cg == nil {
		return
	}
	unix.Close(cg.fd)
	if writeCgroupFile(filepath.Join(cg.dir, "cgroup.kill"), "1") != nil {
		freeze := filepath.Join(cg.dir, "cgroup.freeze")
		writeCgroupFile(freeze, "1")
		for _, pid := range cg.procs() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		writeCgroupFile(freeze, "0")
	}
	// Killed processes leave the group once they are zombies; a group can
	// only be removed when it is empty.
	for deadline := time.Now().Add(killWait); len(cg.procs()) > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	guardForgetCgroup(cg.dir)
	cg.remove()
}

func (cg *cgroup) procs() []int {
	b, _ := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	var pids []int
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (cg *cgroup) remove() {
	for _, d := range cg.created {
		os.Remove(d)
	}
	cg.created = nil
}

// enter moves a spawned child into the group: the fallback for kernels whose
// clone3 lacks CLONE_INTO_CGROUP, where the child runs briefly outside it.
func (cg *cgroup) enter(pid int) error {
	return writeCgroupFile(filepath.Join(cg.dir, "cgroup.procs"), strconv.Itoa(pid))
}
