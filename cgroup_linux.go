package netrunner

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/netrunner-go/netrunner/internal/watchdog"
	"golang.org/x/sys/unix"
)

// A cgroup is the cgroup v2 group a child starts in, from before the spawn
// until the process is done.
type cgroup struct {
	dir     string
	fd      int      // the group's directory, for CLONE_INTO_CGROUP
	created []string // directories we made, innermost first: removed at the end
	watched bool     // registered with the watchdog, to be forgotten at the end
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	mount, err := watchdog.Cgroup2Mount()
	if err != nil {
		return "", fmt.Errorf("cgroup v2: %w (%v)", ErrUnsupported, err)
	}
	return mount, nil
}

// validateCgroup checks Cgroup and CgroupSettings before anything starts.
func (c *Cmd) validateCgroup() error {
	if c.Cgroup == "" {
		if len(c.CgroupSettings) > 0 {
			return invalidf(c.name(), "CgroupSettings without Cgroup")
		}
		return nil
	}
	if strings.IndexByte(c.Cgroup, 0) >= 0 {
		return invalidf(c.name(), "Cgroup contains a NUL byte")
	}
	if filepath.IsAbs(c.Cgroup) {
		return invalidf(c.name(), "Cgroup %q is absolute; it is relative to the cgroup2 mount", c.Cgroup)
	}
	for _, part := range strings.Split(c.Cgroup, "/") {
		if part == ".." || part == "." {
			return invalidf(c.name(), "Cgroup %q contains %q", c.Cgroup, part)
		}
	}
	if err := c.checkNotOwnCgroup(); err != nil {
		return err
	}
	for file, value := range c.CgroupSettings {
		if file == "" || file == "." || file == ".." || strings.ContainsAny(file, "/\x00") {
			return invalidf(c.name(), "CgroupSettings key %q is not a file name", file)
		}
		if strings.IndexByte(value, 0) >= 0 {
			return invalidf(c.name(), "CgroupSettings[%q] contains a NUL byte", file)
		}
	}
	return nil
}

// checkNotOwnCgroup refuses a Cgroup that holds the program itself (its own
// cgroup or an ancestor: killing it at the end would kill the program), one
// that holds the children's cgroup (and so the program's other children and,
// should the program have moved since, its watchdog), and one inside it.
func (c *Cmd) checkNotOwnCgroup() error {
	mount, err := watchdog.Cgroup2Mount()
	if err != nil {
		return nil // openCgroup reports it
	}
	dir := filepath.Join(mount, filepath.Clean(c.Cgroup))
	own, err := watchdog.SelfCgroupDir()
	switch {
	case errors.Is(err, watchdog.ErrCgroupNotFound):
		return invalidf(c.name(), "Cgroup %q: %v, so it could hold this program and kill it", c.Cgroup, err)
	case err == nil && isWithin(own, dir):
		return invalidf(c.name(), "Cgroup %q holds this program itself (its cgroup is %q): killing it would kill the program", c.Cgroup, strings.TrimPrefix(own, mount))
	}
	if prefix := watchdog.ChildCgroupPrefix(); prefix != "" && (strings.HasPrefix(dir, prefix) || isWithin(filepath.Dir(prefix), dir)) {
		return invalidf(c.name(), "Cgroup %q holds or is within %s*, where netrunner puts this program's other children", c.Cgroup, prefix)
	}
	return nil
}

// isWithin reports whether path is dir or below it.
func isWithin(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
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

// forkable reports whether a child forked straight into the group lives past
// its birth, which some kernels deny (see watchdog.ForkIntoWorks). A group we
// just made starts with no kills, as the children's cgroup did, whose making
// told; one that existed is probed.
func (cg *cgroup) forkable() bool {
	if len(cg.created) > 0 && cg.created[0] == cg.dir {
		if ok, known := watchdog.FreshCgroupsForkable(); known {
			return ok
		}
	}
	return watchdog.ForkIntoWorks(cg.fd)
}

// watch registers the group with the watchdog before a child is forked into
// it, and reports whether the watchdog watches it now. (The group is the
// program's to kill: the watchdog acts only while the program has the
// credentials it started the watchdog with.)
func (cg *cgroup) watch() bool {
	if cg == nil {
		return false
	}
	cg.watched = true
	return watchdog.WatchCgroup(cg.dir, len(cg.created))
}

// end kills every process left in the group, waits until they have left it
// (at most killWait), removes what we created, and tells the watchdog, in
// that order: should the program die in between, the watchdog finds the
// group gone rather than leaves it behind.
func (cg *cgroup) end() {
	if cg == nil {
		return
	}
	watchdog.KillCgroup(cg.fd, killWait)
	unix.Close(cg.fd)
	cg.remove()
	if cg.watched {
		watchdog.ForgetCgroup(cg.dir)
	}
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
