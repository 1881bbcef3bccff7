//go:build linux

package netrunner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/netrunner-go/netrunner/internal/testinit" // initialised before internal/watchdog
	"github.com/netrunner-go/netrunner/internal/watchdog"
)

func init() {
	testHelpers["watchdog-parent"] = watchdogHelperParent
	testHelpers["watchdog-disabled"] = watchdogHelperDisabled
	testHelpers["watchdog-own-cgroup"] = watchdogHelperOwnCgroup
	testHelpers["watchdog-err"] = watchdogHelperErr
	testHelpers["watchdog-starting"] = watchdogHelperStarting
}

// watchdogHelperStarting starts `sh -c 'sleep 1000' MARK` from four
// goroutines in a loop, killing each a moment later, so that Starts are in
// flight whenever the test SIGKILLs it; it says "ready" after the first.
// Each sh first starts another in a session of its own, unless clone3 is
// refused or NETRUNNER_TEST_ESCAPE is "no" (as in watchdogHelperParent).
func watchdogHelperStarting() {
	script := "setsid sh -c 'sleep 1000; :' & sleep 1000; :"
	if os.Getenv("NETRUNNER_TEST_CLONE3") == "refused" {
		clone3Refused.Store(true)
	}
	if os.Getenv("NETRUNNER_TEST_CLONE3") == "refused" || os.Getenv("NETRUNNER_TEST_ESCAPE") == "no" {
		// Nothing forked: without the children's cgroup, what a child
		// forks before its group is registered may live on (documented).
		script = "exec sleep 1000"
	}
	mark := os.Getenv("NETRUNNER_TEST_MARK")
	ctx := context.Background()
	if _, err := Command("true").Output(ctx); err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Println("ready")
	for range 4 {
		go func() {
			for {
				p, err := Command("sh", "-c", script, mark).Start(ctx)
				if err != nil {
					continue
				}
				go func() {
					time.Sleep(5 * time.Millisecond)
					p.Kill()
					p.Wait(ctx)
				}()
			}
		}()
	}
	watchdogHelperBlock()
}

// watchdogHelperBlock blocks a helper until the test kills it.
func watchdogHelperBlock() {
	for {
		time.Sleep(time.Hour)
	}
}

func watchdogHelperFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "watchdog helper: "+format+"\n", args...)
	os.Exit(1)
}

// watchdogHelperParent plays a program that started sh, whose background
// sleep stays in sh's group, and, unless NETRUNNER_TEST_ESCAPE is "no", a
// second sh that left for a session of its own; it prints their pids, sh's
// and the watchdog's, then waits to be SIGKILLed. With NETRUNNER_TEST_CLONE3
// set to "refused", it forks as where a seccomp filter refuses clone3: with
// no children's cgroup, registering each group.
func watchdogHelperParent() {
	if os.Getenv("NETRUNNER_TEST_CLONE3") == "refused" {
		clone3Refused.Store(true)
	}
	script := "sleep 1000 & echo $!; setsid sh -c 'sleep 1000; :' & echo $!; wait"
	if os.Getenv("NETRUNNER_TEST_ESCAPE") == "no" {
		script = "sleep 1000 & echo $! 0; wait"
	}
	p, err := Command("sh", "-c", script).Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	out := bufio.NewReader(p.Stdout)
	var pids []string
	for len(pids) < 2 {
		line, err := out.ReadString('\n')
		if err != nil {
			watchdogHelperFail("reading the sleeps' pids: %v", err)
		}
		pids = append(pids, strings.Fields(line)...)
	}
	if err := WatchdogErr(); err != nil {
		watchdogHelperFail("WatchdogErr: %v", err)
	}
	fmt.Printf("ready %s %s %d %d\n", pids[0], pids[1], p.Pid(), watchdog.Pid())
	watchdogHelperBlock()
}

// watchdogHelperErr runs a command and prints what WatchdogErr says.
func watchdogHelperErr() {
	out, err := Command("echo", "ran").Output(context.Background())
	fmt.Printf("%q %v: %v\n", out, err, WatchdogErr())
}

// watchdogHelperDisabled opts out, runs a command and reports.
func watchdogHelperDisabled() {
	DisableWatchdog()
	if _, err := Command("true").Output(context.Background()); err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Printf("pid %d: %v\n", watchdog.Pid(), WatchdogErr())
}

// watchdogHelperOwnCgroup moves itself into NETRUNNER_TEST_CGROUP/inner
// and tries to start commands in cgroups that hold it, then in one below.
func watchdogHelperOwnCgroup() {
	rel := os.Getenv("NETRUNNER_TEST_CGROUP")
	mount, err := watchdog.Cgroup2Mount()
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := os.WriteFile(filepath.Join(mount, rel, "inner", "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		fmt.Printf("nomove %v\n", err)
		return
	}
	for _, cg := range []string{rel, rel + "/inner", rel + "/inner/sub"} {
		c := Command("true")
		c.Cgroup = cg
		_, err := c.Output(context.Background())
		fmt.Printf("%s: %v\n", cg, err)
	}
}

// startWatchdogHelper runs the test binary as helper name, with its stdout
// on a pipe.
func startWatchdogHelper(t *testing.T, name string, env ...string) (*exec.Cmd, *bufio.Reader, *os.File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCommand(name, env...)
	cmd.Stdout, cmd.Stderr = pw, os.Stderr
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pr.Close()
	})
	pr.SetReadDeadline(time.Now().Add(20 * time.Second))
	return cmd, bufio.NewReader(pr), pr
}

// TestWatchdogKillsGroupWhenParentDies: a program started sh (and sh a
// background sleep in its group, and another that left for a session of its
// own) and was SIGKILLed: all die within a second, the watchdog exits, and
// nobody holds the program's stdout. Also when a package init of the
// program takes its time in the watchdog: the first Start waits for it to be
// ready. Where clone3 is refused, the children are registered group by
// group, and a descendant that left its group outlives the program, as
// documented.
func TestWatchdogKillsGroupWhenParentDies(t *testing.T) {
	var env []string
	children := childCgroupExpected()
	if !children {
		env = append(env, "NETRUNNER_TEST_ESCAPE=no")
	}
	t.Run("plain", func(t *testing.T) { testWatchdogParentDeath(t, children, env...) })
	t.Run("slow-init", func(t *testing.T) {
		testWatchdogParentDeath(t, children, append(env, "NETRUNNER_TEST_INIT=sleep:300ms")...)
	})
	t.Run("clone3-refused", func(t *testing.T) {
		testWatchdogParentDeath(t, false, "NETRUNNER_TEST_CLONE3=refused", "NETRUNNER_TEST_ESCAPE=no")
	})
}

func testWatchdogParentDeath(t *testing.T, childCgroup bool, env ...string) {
	cmd, r, _ := startWatchdogHelper(t, "watchdog-parent", env...)
	line := readLine(t, r)
	var sleepPid, escapeePid, shPid, wdPid int
	if _, err := fmt.Sscanf(line, "ready %d %d %d %d", &sleepPid, &escapeePid, &shPid, &wdPid); err != nil || wdPid <= 1 {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	pids := []int{sleepPid, shPid}
	if escapeePid != 0 {
		pids = append(pids, escapeePid)
	}
	killPids(t, append(pids, wdPid)...)
	if pi, err := procStat(sleepPid); err != nil || pi.pgid != shPid {
		t.Fatalf("sleep %d is not in sh's group %d: %v %v", sleepPid, shPid, pi, err)
	}
	if escapeePid != 0 {
		waitFor(t, 5*time.Second, "the second sh to lead a session of its own", func() bool {
			pi, err := procStat(escapeePid)
			return err == nil && pi.sid == escapeePid
		})
	}
	if pi, err := procStat(wdPid); err != nil || pi.comm != watchdog.Name || pi.ppid != cmd.Process.Pid {
		t.Fatalf("watchdog %d: %v %v; want %q, the helper's child", wdPid, pi, err, watchdog.Name)
	}
	cgroup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", shPid))
	inChildCgroup := strings.Contains(string(cgroup), fmt.Sprintf("/netrunner-%d-", cmd.Process.Pid))
	if inChildCgroup != childCgroup {
		t.Fatalf("sh's cgroup: %q; want the helper's children's cgroup: %v", cgroup, childCgroup)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	if !eventually(5*time.Second, func() bool { return slices.IndexFunc(pids, func(pid int) bool { return !isDead(pid) }) < 0 }) {
		t.Fatalf("sh %d or its sleeps %d, %d alive 5s after the parent's SIGKILL", shPid, sleepPid, escapeePid)
	}
	if took := time.Since(killed); took > time.Second {
		t.Errorf("sh and its sleeps died %v after the parent's SIGKILL; the contract says within a second", took)
	} else {
		t.Logf("sh and its sleeps dead %v after the parent's SIGKILL", took)
	}
	if !eventually(5*time.Second, func() bool { return isDead(wdPid) }) {
		t.Errorf("watchdog %d alive 5s after its parent died", wdPid)
	}
	if rest, err := io.ReadAll(r); err != nil {
		t.Errorf("the helper's stdout did not reach EOF (%v, %q): someone still holds it", err, rest)
	}
}

// TestWatchdogKillsChildrenStartingAsParentDies: a child whose Start has
// not returned yet (it is being forked or exec'd) when the program is
// SIGKILLed dies too, and so does what it forked at once, even in a session
// of its own: it was forked into the watched children's cgroup. Where clone3
// is refused, the kernel kills the child (Pdeathsig) until the watchdog
// knows its group.
func TestWatchdogKillsChildrenStartingAsParentDies(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		if childCgroupExpected() {
			testWatchdogStartingAsParentDies(t)
		} else {
			testWatchdogStartingAsParentDies(t, "NETRUNNER_TEST_ESCAPE=no")
		}
	})
	t.Run("clone3-refused", func(t *testing.T) { testWatchdogStartingAsParentDies(t, "NETRUNNER_TEST_CLONE3=refused") })
}

func testWatchdogStartingAsParentDies(t *testing.T, env ...string) {
	for try := range 5 {
		mark := fmt.Sprintf("netrunner-starting-%d-%d", os.Getpid(), try)
		cmd, r, _ := startWatchdogHelper(t, "watchdog-starting", append(env, "NETRUNNER_TEST_MARK="+mark)...)
		if line := readLine(t, r); line != "ready" {
			t.Fatalf("helper said %q", line)
		}
		// Any moment will do; a little later, more Starts have come and gone.
		time.Sleep(time.Duration(50+40*try) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		// Every process the helper started, and all they started, has the
		// mark in its environment (unless it cleared it: none here does).
		marked := func() []procInfo {
			var live []procInfo
			for _, pi := range allProcs() {
				env, _ := os.ReadFile("/proc/" + strconv.Itoa(pi.pid) + "/environ")
				if strings.Contains(string(env), "NETRUNNER_TEST_MARK="+mark+"\x00") && !isDead(pi.pid) {
					live = append(live, pi)
				}
			}
			return live
		}
		if !eventually(5*time.Second, func() bool { return len(marked()) == 0 }) {
			live := marked()
			for _, pi := range live {
				syscall.Kill(pi.pid, syscall.SIGKILL)
			}
			t.Fatalf("try %d: children of the SIGKILLed program alive 5s later: %v", try, live)
		}
	}
}

// TestWatchdogErrNilAfterRun: on Linux, once a command ran, the watchdog
// runs, is ready, and WatchdogErr says the children are protected.
func TestWatchdogErrNilAfterRun(t *testing.T) {
	if _, err := Command("true").Output(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := WatchdogErr(); err != nil {
		t.Fatalf("WatchdogErr() = %v after a run", err)
	}
	pid := watchdog.Pid()
	pi, err := procStat(pid)
	if pid == 0 || err != nil || pi.comm != watchdog.Name || pi.ppid != os.Getpid() || pi.state == 'Z' {
		t.Fatalf("watchdog pid %d: %v %v; want a live %q, our child", pid, pi, err, watchdog.Name)
	}
}

// TestWatchdogDisabled: DisableWatchdog before the first Start: commands
// run, no watchdog starts, and WatchdogErr says why.
func TestWatchdogDisabled(t *testing.T) {
	cmd, r, _ := startWatchdogHelper(t, "watchdog-disabled")
	line := readLine(t, r)
	if !strings.HasPrefix(line, "pid 0: netrunner: the watchdog is disabled") {
		t.Errorf("helper said %q, want no watchdog and WatchdogErr saying it is disabled", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
}

// TestCgroupHoldingTheProgramRefused: a Cgroup that is the program's own
// cgroup or an ancestor is ErrInvalidCommand before anything starts (it
// would be killed with the command); one below it works.
func TestCgroupHoldingTheProgramRefused(t *testing.T) {
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	inner := filepath.Join(mnt, rel, "inner")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	t.Cleanup(func() {
		cgTestRemove(t, filepath.Join(inner, "sub"))
		cgTestRemove(t, inner)
	})
	cmd, r, _ := startWatchdogHelper(t, "watchdog-own-cgroup", "NETRUNNER_TEST_CGROUP="+rel)
	var out []string
	for range 3 {
		line := readLine(t, r)
		if msg, ok := strings.CutPrefix(line, "nomove "); ok {
			t.Skipf("cannot move a process into a cgroup: %s", msg)
		}
		out = append(out, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	for i, cg := range []string{rel, rel + "/inner"} {
		if !strings.HasPrefix(out[i], cg+": netrunner: ") || !strings.Contains(out[i], ErrInvalidCommand.Error()) || !strings.Contains(out[i], "holds this program") {
			t.Errorf("Cgroup %q: %q, want ErrInvalidCommand saying it holds the program", cg, out[i])
		}
	}
	if want := rel + "/inner/sub: <nil>"; out[2] != want {
		t.Errorf("helper said %q, want %q", out[2], want)
	}
	if _, err := os.Stat(filepath.Join(inner, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cgroup the run created is still there: %v", err)
	}
	// The helper's watchdog, which lives in inner too, removes the
	// children's cgroup the helper made there once the helper is gone.
	children := filepath.Join(inner, "netrunner-"+strconv.Itoa(cmd.Process.Pid)+"-*")
	waitFor(t, 10*time.Second, "the watchdog to remove "+children, func() bool {
		made, err := filepath.Glob(children)
		return err == nil && len(made) == 0
	})
}

// TestWatchdogNotReadyReported: when a package init of the program ends the
// re-executed watchdog, commands still run, and WatchdogErr says that the
// children are unprotected and why, with the exit status.
func TestWatchdogNotReadyReported(t *testing.T) {
	cmd, r, _ := startWatchdogHelper(t, "watchdog-err", "NETRUNNER_TEST_INIT=exit:7")
	line := readLine(t, r)
	if !strings.HasPrefix(line, `"ran\n" <nil>: netrunner: the watchdog (pid `) || !strings.Contains(line, "did not become ready") ||
		!strings.Contains(line, "exited with status 7") {
		t.Errorf("helper said %q, want the command's output and WatchdogErr with the exit status", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
}

// TestWatchdogErrWithoutProc: without /proc the program cannot re-execute
// itself; commands still run, and WatchdogErr says why they are unprotected.
func TestWatchdogErrWithoutProc(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare for a mount namespace without /proc")
	}
	cmd := exec.Command(unshare, "-m", "sh", "-c", `umount -l /proc && exec "$0"`, os.Args[0])
	cmd.Env = append(os.Environ(), "NETRUNNER_TEST_HELPER=watchdog-err",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v (%q)", err, out)
	}
	want := `"ran\n" <nil>: netrunner: cannot start the watchdog: /proc is not mounted (stat /proc/self/exe: no such file or directory)`
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("helper said %q, want it to start with %q", out, want)
	}
}
