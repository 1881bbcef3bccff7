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

// TestLeftoverGroupIDReusedIsLeftAlone: after the leader is reaped, its
// group's number is free for reuse once the group's last member is gone,
// while the leftovers' ending (endGroup) may still be looking for members
// of that number. A new group that got the number, unrelated or another
// Process of ours, is never signalled. The test process is a subreaper,
// reaps the last leftover itself, and makes the next pid the old leader's
// (ns_last_pid, root), as a busy machine would by chance.
func TestLeftoverGroupIDReusedIsLeftAlone(t *testing.T) {
	t.Run("unrelated", func(t *testing.T) { leftoverGroupIDReuse(t, false) })
	t.Run("sibling Process", func(t *testing.T) { leftoverGroupIDReuse(t, true) })
}

func leftoverGroupIDReuse(t *testing.T, sibling bool) {
	if os.Getuid() != 0 {
		t.Skip("needs root for ns_last_pid")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skip(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	ctx := context.Background()
	c := sh("trap '' TERM; sleep 0.3 & echo $!; exit 0")
	c.KillTimeout = 3 * time.Second
	p, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := p.Pid()
	line, err := p.Stdout.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leftover, _ := strconv.Atoi(strings.TrimSpace(string(line)))
	p.Stdout.Close()
	// The leftover, orphaned, is now ours to reap.
	var ws syscall.WaitStatus
	if !eventually(5*time.Second, func() bool {
		pid, _ := syscall.Wait4(leftover, &ws, syscall.WNOHANG, nil)
		return pid == leftover
	}) {
		t.Fatalf("leftover %d never exited", leftover)
	}
	// Group id `leader` is now free: take it, as an unrelated program would.
	var sentinel *os.Process
	for range 50 {
		os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(leader-1)), 0)
		var pid int
		if sibling {
			sp, err := Command("sleep", "30").Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pid = sp.Pid()
			if pid == leader {
				defer func() { sp.Kill(); sp.Wait(ctx) }()
				within(t, 10*time.Second, "Wait", func() { p.Wait(ctx) })
				select {
				case <-sp.Done():
					t.Fatalf("a sibling Process %d that reused the reaped leader's id was signalled: %v", pid, sp.Wait(ctx))
				default:
				}
				return
			}
			sp.Kill()
			sp.Wait(ctx)
			continue
		}
		pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "30"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			t.Fatal(err)
		}
		sp, _ := os.FindProcess(pid)
		if pid == leader {
			sentinel = sp
			break
		}
		sp.Kill()
		sp.Wait()
	}
	if sentinel == nil {
		t.Skip("could not get the old leader's pid back")
	}
	defer func() { sentinel.Kill(); sentinel.Wait() }()
	within(t, 10*time.Second, "Wait", func() { p.Wait(ctx) })
	if err := syscall.Kill(sentinel.Pid, 0); err != nil || isDead(sentinel.Pid) {
		st, _ := sentinel.Wait()
		t.Fatalf("an unrelated process group %d that reused the reaped leader's id was signalled: %v", leader, st)
	}
}
