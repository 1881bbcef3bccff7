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
func watchdogHelperStarting() {
	mark := os.Getenv("NETRUNNER_TEST_MARK")
	ctx := context.Background()
	if _, err := Command("true").Output(ctx); err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Println("ready")
	for range 4 {
		go func() {
			for {
				p, err := Command("sh", "-c", "sleep 1000; :", mark).Start(ctx)
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
// sleep stays in sh's group; it prints both pids and the watchdog's, then
// waits to be SIGKILLed.
func watchdogHelperParent() {
	p, err := Command("sh", "-c", "sleep 1000 & echo $!; wait").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	line, err := bufio.NewReader(p.Stdout).ReadString('\n')
	if err != nil {
		watchdogHelperFail("reading the sleep's pid: %v", err)
	}
	if err := WatchdogErr(); err != nil {
		watchdogHelperFail("WatchdogErr: %v", err)
	}
	fmt.Printf("ready %s %d %d\n", strings.TrimSpace(line), p.Pid(), watchdog.Pid())
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
// background sleep in its group) and was SIGKILLed: both die within a
// second, the watchdog exits, and nobody holds the program's stdout. Also
// when a package init of the program takes its time in the watchdog: the
// first Start waits for it to be ready.
func TestWatchdogKillsGroupWhenParentDies(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testWatchdogParentDeath(t) })
	t.Run("slow-init", func(t *testing.T) { testWatchdogParentDeath(t, "NETRUNNER_TEST_INIT=sleep:300ms") })
}

func testWatchdogParentDeath(t *testing.T, env ...string) {
	cmd, r, _ := startWatchdogHelper(t, "watchdog-parent", env...)
	line := readLine(t, r)
	var sleepPid, shPid, wdPid int
	if _, err := fmt.Sscanf(line, "ready %d %d %d", &sleepPid, &shPid, &wdPid); err != nil || wdPid <= 1 {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	killPids(t, sleepPid, shPid, wdPid)
	if pi, err := procStat(sleepPid); err != nil || pi.pgid != shPid {
		t.Fatalf("sleep %d is not in sh's group %d: %v %v", sleepPid, shPid, pi, err)
	}
	if pi, err := procStat(wdPid); err != nil || pi.comm != watchdog.Name || pi.ppid != cmd.Process.Pid {
		t.Fatalf("watchdog %d: %v %v; want %q, the helper's child", wdPid, pi, err, watchdog.Name)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	if !eventually(5*time.Second, func() bool { return isDead(sleepPid) && isDead(shPid) }) {
		t.Fatalf("sh %d or its sleep %d alive 5s after the parent's SIGKILL", shPid, sleepPid)
	}
	if took := time.Since(killed); took > time.Second {
		t.Errorf("sh and its sleep died %v after the parent's SIGKILL; the contract says within a second", took)
	} else {
		t.Logf("sh and its sleep dead %v after the parent's SIGKILL", took)
	}
	if !eventually(5*time.Second, func() bool { return isDead(wdPid) }) {
		t.Errorf("watchdog %d alive 5s after its parent died", wdPid)
	}
	if rest, err := io.ReadAll(r); err != nil {
		t.Errorf("the helper's stdout did not reach EOF (%v, %q): someone still holds it", err, rest)
	}
}

// TestWatchdogKillsChildrenStartingAsParentDies: a child whose Start has
// not returned yet (it is being forked, exec'd or registered) when the
// program is SIGKILLed dies too: the kernel kills it (Pdeathsig) until the
// watchdog knows it.
func TestWatchdogKillsChildrenStartingAsParentDies(t *testing.T) {
	for try := range 5 {
		mark := fmt.Sprintf("netrunner-starting-%d-%d", os.Getpid(), try)
		cmd, r, _ := startWatchdogHelper(t, "watchdog-starting", "NETRUNNER_TEST_MARK="+mark)
		if line := readLine(t, r); line != "ready" {
			t.Fatalf("helper said %q", line)
		}
		// Any moment will do; a little later, more Starts have come and gone.
		time.Sleep(time.Duration(50+40*try) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		marked := func() []procInfo {
			var live []procInfo
			for _, pi := range allProcs() {
				cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pi.pid) + "/cmdline")
				if strings.Contains(string(cmdline), mark) && !isDead(pi.pid) {
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
	children := filepath.Join(inner, "netrunner-"+strconv.Itoa(cmd.Process.Pid))
	waitFor(t, 10*time.Second, "the watchdog to remove "+children, func() bool {
		_, err := os.Stat(children)
		return errors.Is(err, os.ErrNotExist)
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
