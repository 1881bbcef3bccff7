package netrunner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A setting whose controller is not enabled for the group says so, and how
// to enable it, instead of only "no such file or directory".
func TestCgroupSettingControllerNotEnabled(t *testing.T) {
	mnt := cgTestMount(t)
	fields := func(file string) []string {
		b, _ := os.ReadFile(filepath.Join(mnt, file))
		return strings.Fields(string(b))
	}
	files := map[string]string{"pids": "pids.max", "memory": "memory.max", "cpu": "cpu.max", "io": "io.max",
		"hugetlb": "hugetlb.2MB.max", "cpuset": "cpuset.cpus", "rdma": "rdma.max", "misc": "misc.max"}
	enabled := fields("cgroup.subtree_control")
	var controller string
	for _, c := range fields("cgroup.controllers") {
		if _, ok := files[c]; ok && !slices.Contains(enabled, c) {
			controller = c
			break
		}
	}
	if controller == "" {
		t.Skip("every controller of the cgroup2 root is enabled for its children")
	}
	// A group right below the root, which has the controller but does not
	// pass it on.
	rel := fmt.Sprintf("netrunner-test-%d-%s", os.Getpid(), controller)
	t.Cleanup(func() { cgTestRemove(t, filepath.Join(mnt, rel)) })
	check := leakCheck(t)
	c := Command("true")
	c.Cgroup = rel
	c.CgroupSettings = map[string]string{files[controller]: "max"}
	p, err := c.Start(testCtx(t))
	cgTestSkipUnsupported(t, err)
	if p != nil {
		reap(t, p)
		t.Fatalf("Start with %s not enabled succeeded", controller)
	}
	msg := errString(err)
	for _, want := range []string{"netrunner: true: ", files[controller], "not enabled", `"+` + controller + `"`, filepath.Join(mnt, "cgroup.subtree_control")} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %s", msg, want)
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q does not match os.ErrNotExist", msg)
	}
	check()
}

// A setting of a controller the cgroup v2 hierarchy lacks (bound to cgroup
// v1 on a hybrid system) says that; an unknown file is no such setting.
func TestCgroupSettingUnknownOrUnavailable(t *testing.T) {
	mnt := cgTestMount(t)
	b, _ := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
	for file, want := range map[string]string{"pids.max": "not available", "no.such.file": "no such setting"} {
		if file == "pids.max" && slices.Contains(strings.Fields(string(b)), "pids") {
			continue // the pids controller is there: nothing to show
		}
		c := Command("true")
		c.Cgroup = cgTestPath(t)
		c.CgroupSettings = map[string]string{file: "1"}
		p, err := c.Start(testCtx(t))
		cgTestSkipUnsupported(t, err)
		if p != nil {
			reap(t, p)
			t.Fatalf("Start with setting %s succeeded", file)
		}
		if msg := errString(err); !strings.Contains(msg, want) || !strings.Contains(msg, file) {
			t.Errorf("setting %s: error %q, want it to say %q", file, msg, want)
		}
		// An unknown file is a wrong Cmd: a Daemon must not retry it.
		if file == "no.such.file" && !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("setting %s: error %v, want ErrInvalidCommand", file, err)
		}
	}
}
