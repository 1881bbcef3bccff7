//go:build linux

package watchdog

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/netrunner-go/netrunner/internal/testinit" // initialised before this package
)

func init() {
	testHelpers["dead-watchdog"] = helperDeadWatchdog
	testHelpers["stuck-watchdog"] = helperStuckWatchdog
	testHelpers["refused"] = helperRefused
	testHelpers["not-ready"] = helperNotReady
	testHelpers["startup"] = helperStartup
	testHelpers["give-up"] = helperGiveUp
	testHelpers["churn"] = helperChurn
}

// helperLeader starts a sleep leading its own group, a child of the helper.
func helperLeader() int {
	c := exec.Command("sleep", "1000")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		helperFail("%v", err)
	}
	return c.Process.Pid
}

// helperDeadWatchdog kills its own watchdog while a group is registered:
// Err says so at once, the dead watchdog is reaped, calls meanwhile neither
// crash (SIGPIPE) nor hang, and the next Ensure starts a replacement that
// knows the group; it prints "ready LEADER WATCHDOG" and
// waits to be killed, so that the test sees the replacement do its job.
func helperDeadWatchdog() {
	Ensure()
	leader := helperLeader()
	WatchGroup(leader)
	pid := Pid()
	if err := Err(); pid == 0 || err != nil {
		helperFail("no working watchdog: pid %d, %v", pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		helperFail("kill watchdog: %v", err)
	}
	// Its last thread to exit closes its pipes (the group leader may be a
	// zombie before).
	err := Err()
	for deadline := time.Now().Add(10 * time.Second); err == nil; err = Err() {
		if time.Now().After(deadline) {
			helperFail("Err still nil 10s after the watchdog's SIGKILL")
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, errReplyClosed) || !strings.Contains(err.Error(), "killed by SIGKILL") {
		helperFail("Err after the watchdog died: %v, want a closed pipe and how it died", err)
	}
	WatchGroup(fakePgid)
	ForgetGroup(fakePgid)
	if p := Pid(); p != 0 {
		helperFail("Pid = %d after the watchdog died, want 0", p)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		helperFail("watchdog %d not reaped", pid)
	}
	Ensure()
	if Pid() == 0 {
		helperFail("no replacement: %v", Err())
	}
	if err := Err(); err != nil {
		helperFail("Err with a replacement that knows the group: %v", err)
	}
	fmt.Printf("ready %d %d\n", leader, Pid())
	for {
		time.Sleep(time.Hour)
	}
}

// helperStuckWatchdog stops its own watchdog: a registration then waits
// ResponseTimeout and gives the watchdog up (killed and reaped) instead of
// hanging the program.
func helperStuckWatchdog() {
	ResponseTimeout = 200 * time.Millisecond
	Ensure()
	pid := Pid()
	if pid == 0 {
		helperFail("no watchdog: %v", Err())
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		helperFail("stop watchdog: %v", err)
	}
	start := time.Now()
	leader := helperLeader()
	defer func() {
		// Its watchdog is given up: the leader is this helper's to end.
		syscall.Kill(leader, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(leader, &ws, 0, nil)
	}()
	WatchGroup(leader)
	err := Err()
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		helperFail("Err = %v, want no answer", err)
	}
	if p := Pid(); p != 0 || !isDead(pid) {
		helperFail("stuck watchdog %d not given up (Pid %d)", pid, p)
	}
	fmt.Printf("ok %v: %v\n", took.Round(time.Millisecond), Err())
}

// helperRefused registers a group that is not its child's: Err says it is
// unprotected until the registration is forgotten.
func helperRefused() {
	Ensure()
	// The test process: alive, and not a child of this program.
	WatchGroup(os.Getppid())
	err := Err()
	ForgetGroup(os.Getppid())
	fmt.Printf("%v | %v\n", err, Err())
}

// helperNotReady starts a watchdog whose package init misbehaves (see
// internal/testinit) and prints what Err says, and whether a process is left.
func helperNotReady() {
	ReadyTimeout = 500 * time.Millisecond
	firstRetry = time.Hour
	Ensure()
	fmt.Printf("pid %d children %d: %v\n", Pid(), countChildren(), Err())
}

// helperGiveUp keeps calling Ensure while the watchdog's init exits: after
// maxStarts attempts it stops trying, and says so.
func helperGiveUp() {
	firstRetry, maxRetry = time.Millisecond, time.Millisecond
	start := time.Now()
	for Err() == nil || !strings.Contains(Err().Error(), "gave up") {
		if time.Since(start) > 20*time.Second {
			helperFail("still trying after 20s: %v", Err())
		}
		Ensure()
		time.Sleep(2 * time.Millisecond)
	}
	for range 10 {
		Ensure()
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Printf("pid %d children %d: %v\n", Pid(), countChildren(), Err())
}

// helperChurn registers and forgets groups and cgroup lines from many
// goroutines at once, leaves one group per goroutine registered, prints
// their leaders and waits to be killed.
func helperChurn() {
	Ensure()
	leaders := make([]int, 8)
	var wg sync.WaitGroup
	for i := range leaders {
		wg.Go(func() {
			leader := helperLeader()
			for j := range 200 {
				WatchGroup(leader)
				if j%16 == 0 {
					dir := fmt.Sprintf("/nonexistent/netrunner-test/%d/%d", i, j)
					WatchCgroup(dir, 1) // refused: not on cgroup2
					ForgetCgroup(dir)
				}
				ForgetGroup(leader)
			}
			WatchGroup(leader)
			leaders[i] = leader
		})
	}
	wg.Wait()
	if err := Err(); err != nil {
		helperFail("%v", err)
	}
	fmt.Println(strings.Trim(fmt.Sprint(leaders), "[]"))
	for {
		time.Sleep(time.Hour)
	}
}

// countChildren counts the helper's live and zombie children (each thread
// lists those it forked).
func countChildren() int {
	n := 0
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		n += len(strings.Fields(string(b)))
	}
	return n
}

// helperStartup measures what starting the watchdog costs the program: the
// time Ensure takes (fork, exec, the program's inits, the confirmation) and
// the watchdog's resident memory.
func helperStartup() {
	start := time.Now()
	Ensure()
	took := time.Since(start)
	if err := Err(); err != nil {
		helperFail("%v", err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", Pid()))
	if err != nil {
		helperFail("%v", err)
	}
	var rss int64
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	fmt.Printf("startup %d %d\n", took.Nanoseconds(), rss)
}

func TestDeadWatchdogIsReplaced(t *testing.T) {
	h := startHelper(t, "dead-watchdog")
	var leader, wd int
	if s := h.line(t); func() error { _, err := fmt.Sscanf(s, "ready %d %d", &leader, &wd); return err }() != nil {
		t.Fatalf("helper said %q", s)
	}
	t.Cleanup(func() { syscall.Kill(leader, syscall.SIGKILL) })
	h.cmd.Process.Kill()
	waitDead(t, time.Second, "the group registered before the first watchdog died", leader)
	waitDead(t, 5*time.Second, "the replacement", wd)
	h.finish(t)
}

// TestConcurrentRegistrations: registrations from many goroutines at once
// reach the watchdog intact; it kills what is left registered when the
// program is SIGKILLed.
func TestConcurrentRegistrations(t *testing.T) {
	h := startHelper(t, "churn")
	var leaders []int
	for _, f := range strings.Fields(h.line(t)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		leaders = append(leaders, pid)
	}
	t.Cleanup(func() {
		for _, pid := range leaders {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if len(leaders) != 8 {
		t.Fatalf("helper printed %v", leaders)
	}
	h.cmd.Process.Kill()
	waitDead(t, time.Second, "the registered groups", leaders...)
	h.finish(t)
}

func TestStuckWatchdogGivenUp(t *testing.T) {
	h := startHelper(t, "stuck-watchdog")
	s := h.line(t)
	if !strings.HasPrefix(s, "ok ") {
		t.Fatalf("helper said %q", s)
	}
	t.Log(s)
	if err := h.finish(t); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

func TestRefusedRegistrationReported(t *testing.T) {
	h := startHelper(t, "refused")
	s := h.line(t)
	if want := fmt.Sprintf("the watchdog refused process group %d: it is not killed when the program dies | <nil>", os.Getpid()); s != want {
		t.Errorf("helper said %q, want %q", s, want)
	}
	if err := h.finish(t); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestNotReadyReported: a watchdog whose package init exits, or takes
// longer than ReadyTimeout, is reported by Err (with its exit status) and
// leaves no process behind; one whose init is only slow is waited for.
func TestNotReadyReported(t *testing.T) {
	for _, tc := range []struct{ init, want string }{
		{"exit:3", "it closed its reply pipe (it exited with status 3)"},
		{"sleep:30s", "no answer for 500ms"},
		{"sleep:100ms", "pid [1-9][0-9]* children 1: <nil>"},
	} {
		t.Run(tc.init, func(t *testing.T) {
			h := startHelper(t, "not-ready", "NETRUNNER_TEST_INIT="+tc.init)
			s := h.line(t)
			if strings.HasSuffix(tc.want, "<nil>") {
				var pid, n int
				if _, err := fmt.Sscanf(s, "pid %d children %d: <nil>", &pid, &n); err != nil || pid == 0 || n != 1 {
					t.Errorf("helper said %q, want a ready watchdog", s)
				}
			} else if !strings.HasPrefix(s, "pid 0 children 0: the watchdog (pid ") || !strings.Contains(s, tc.want) {
				t.Errorf("helper said %q, want no watchdog, no child left, and %q", s, tc.want)
			}
			if err := h.finish(t); err != nil {
				t.Fatalf("helper: %v", err)
			}
		})
	}
}

// TestGiveUp: a watchdog that cannot start is tried maxStarts times, then
// no more (each attempt could cost a Start up to ReadyTimeout).
func TestGiveUp(t *testing.T) {
	h := startHelper(t, "give-up", "NETRUNNER_TEST_INIT=exit:3")
	s := h.line(t)
	if !strings.HasPrefix(s, "pid 0 children 0: ") || !strings.Contains(s, "exited with status 3") || !strings.HasSuffix(s, "; gave up after 3 attempts") {
		t.Errorf("helper said %q", s)
	}
	if err := h.finish(t); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestStartupCost measures, in fresh programs, what the watchdog costs once:
// the first Ensure (fork, exec, the program's inits, the confirmation) and
// the watchdog's resident memory. Figures for the README.
func TestStartupCost(t *testing.T) {
	var took []time.Duration
	var rss []int64
	for range 5 {
		h := startHelper(t, "startup")
		var ns, kb int64
		if s := h.line(t); func() error { _, err := fmt.Sscanf(s, "startup %d %d", &ns, &kb); return err }() != nil {
			t.Fatalf("helper said %q", s)
		}
		took, rss = append(took, time.Duration(ns)), append(rss, kb)
		if err := h.finish(t); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(took)
	slices.Sort(rss)
	t.Logf("first Ensure: min %v median %v max %v", took[0], took[2], took[4])
	t.Logf("watchdog RSS: min %d KiB median %d KiB max %d KiB", rss[0], rss[2], rss[4])
}
