package netrunner

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// missingSetting explains why a group has no file for a setting. The usual
// reason is its controller: a group has a controller's files only when its
// parent enables the controller in cgroup.subtree_control, which the parent
// can do only when the controller reaches the parent in turn.
func missingSetting(mount, dir, file string, err error) error {
	controller, _, _ := strings.Cut(file, ".")
	has := func(group, list string) bool {
		b, _ := os.ReadFile(filepath.Join(group, list))
		return slices.Contains(strings.Fields(string(b)), controller)
	}
	parent := filepath.Dir(dir)
	switch {
	case controller == "cgroup":
	case !has(mount, "cgroup.controllers"):
		if !knownController(controller) {
			break
		}
		return fmt.Errorf("the %q controller is not available in the cgroup v2 hierarchy at %s (it may be bound to cgroup v1): %w",
			controller, mount, err)
	case !has(parent, "cgroup.controllers"):
		return fmt.Errorf("the %q controller is not enabled for this group: it does not reach the parent group %s, so enable it (+%s) in cgroup.subtree_control of each group above that: %w",
			controller, parent, controller, err)
	case !has(parent, "cgroup.subtree_control"):
		return fmt.Errorf("the %q controller is not enabled for this group: write \"+%s\" to %s: %w",
			controller, controller, filepath.Join(parent, "cgroup.subtree_control"), err)
	}
	// The group has no such file: the Cmd is wrong, whenever it is tried.
	return fmt.Errorf("no such setting (%w): %w", err, ErrInvalidCommand)
}

// knownController reports the cgroup v2 controllers of Linux, which a
// hierarchy may lack.
func knownController(name string) bool {
	switch name {
	case "cpu", "cpuset", "io", "memory", "hugetlb", "pids", "rdma", "misc", "dmem":
		return true
	}
	return false
}
