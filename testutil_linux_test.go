package netrunner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// helperCommand returns a command that re-executes the test binary as the
// test helper registered under name (see testHelpers), with env added. The
// helper dies with the test process.
func helperCommand(name string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{"NETRUNNER_TEST_HELPER=" + name}, env...)...)
	// Under -race, a program sleeps 1s at exit by default; helpers need not.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// childCgroupExpected reports whether this machine lets the program make the
// children's cgroup: cgroup v2 with write access where the program is, and
// Linux 5.7. Tests that depend on it expect it then, and fail without it.
func childCgroupExpected() bool {
	mount, err := watchdog.Cgroup2Mount()
	if err != nil {
		return false
	}
	own, err := watchdog.SelfCgroup()
	return err == nil && watchdog.CloneIntoCgroup() &&
		unix.Access(filepath.Join(mount, own, "cgroup.procs"), unix.W_OK) == nil
}

// childCgroupOfNewChild runs a child and returns the cgroup directory it ran
// in: the children's cgroup, where the machine allows one.
func childCgroupOfNewChild() (string, error) {
	mount, err := watchdog.Cgroup2Mount()
	if err != nil {
		return "", err
	}
	out, err := Command("cat", "/proc/self/cgroup").Output(context.Background())
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(mount, rel), nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 line in %q", out)
}
