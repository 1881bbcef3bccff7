package netrunner

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	testHelpers["subreaper-stopped-leftover"] = helperSubreaperStoppedLeftover
}

// helperSubreaperStoppedLeftover plays a supervisor that is a child
// subreaper: a leftover its child leaves behind becomes its own child, so
// the leftover's group is not orphaned and the kernel does not continue it.
// It runs Output of a shell that leaves a stopped sleep in its group, with a
// KillTimeout of an hour, and prints the sleep's pid and Output's error.
func helperSubreaperStoppedLeftover() {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Printf("prctl: %v\n", err)
		return
	}
	c := sh(`sleep 1000 & kill -STOP $!; echo $!`)
	c.KillTimeout = time.Hour
	out, err := c.Output(context.Background())
	fmt.Printf("%s %v\n", strings.TrimSpace(string(out)), err)
}

// Leftover cleanup sends SIGCONT after SIGTERM: a stopped descendant left
// in the group dies by the TERM at once, and Output returns long before
// KillTimeout. (In an orphaned group the kernel continues stopped members
// itself; a subreaper parent keeps the group from being orphaned.)
func TestLeftoverStoppedDescendantTerminated(t *testing.T) {
	helper := helperCommand("subreaper-stopped-leftover")
	helper.Stderr = os.Stderr
	var out []byte
	var err error
	within(t, 20*time.Second, "the helper's Output with a stopped leftover", func() { out, err = helper.Output() })
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 {
		t.Fatalf("helper: %q, %v", out, err)
	}
	pid, perr := strconv.Atoi(f[0])
	if perr != nil {
		t.Fatalf("helper: %q", out)
	}
	if msg := strings.Join(f[1:], " "); msg != "<nil>" {
		t.Errorf("Output: %s", msg)
	}
	if !isDead(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the stopped leftover (pid %d) is alive after Output returned", pid)
	}
}
