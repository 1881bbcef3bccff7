//go:build linux

package netrunner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func init() {
	testHelpers["cgroup-parent"] = cgroupHelperParent
}

// cgTestMount returns the cgroup2 mount point, read from mountinfo here
// independently of the library; it skips the test where there is none.
func cgTestMount(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mountinfo: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			if mnt, err := strconv.Unquote(`"` + f[4] + `"`); err == nil {
				return mnt
			}
			return f[4]
		}
	}
	t.Skip("cgroup v2 is not mounted")
	return ""
}

// cgTestPath returns a cgroup path, relative to the mount, unique to the
// test and this test process: "netrunner-test-PID/NAME". Its parent does not
// exist yet, so a run creates both. The cleanup empties and removes
// whatever is left of both.
func cgTestPath(t testing.TB) string {
	t.Helper()
	mnt := cgTestMount(t)
	parent := fmt.Sprintf("netrunner-test-%d", os.Getpid())
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	rel := parent + "/" + name
	t.Cleanup(func() {
		cgTestRemove(t, filepath.Join(mnt, rel))
		os.Remove(filepath.Join(mnt, parent)) // fails while another test uses it
	})
	return rel
}

// cgTestRemove kills what is in dir and removes it, if it exists.
func cgTestRemove(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("cleanup: rmdir %s: %v", dir, err)
			return
		}
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		time.Sleep(5 * time.Millisecond)
	}
}

// cgTestSkipUnsupported skips the test when err says cgroup v2 is not usable.
func cgTestSkipUnsupported(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("cgroup v2 not usable here: %v", err)
	}
}

// cgTestEscape is a shell snippet that starts a sleep in a session (and so
// a process group) of its own, waits until it has left the shell's, and
// prints its pid.
const cgTestEscape = `setsid sleep 1000 & pid=$!
until [ "$(cut -d' ' -f6 /proc/$pid/stat)" = "$pid" ]; do sleep 0.01; done
echo $pid`

func cgTestExists(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

// The group is created, the child runs inside it, and the group is removed
// again once the process is done.
func TestCgroupRunsInside(t *testing.T) {
	check := leakCheck(t)
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	c := Command("cat", "/proc/self/cgroup")
	c.Cgroup = rel
	out, err := c.Output(testCtx(t))
	cgTestSkipUnsupported(t, err)
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	if want := "0::/" + rel + "\n"; !strings.Contains(string(out), want) {
		t.Errorf("the child's /proc/self/cgroup is %q, want the line %q", out, want)
	}
	if cgTestExists(filepath.Join(mnt, rel)) {
		t.Errorf("the group %s we created is still there after the run", rel)
	}
	if cgTestExists(filepath.Join(mnt, filepath.Dir(rel))) {
		t.Errorf("the parent %s created for the group is still there after the run", filepath.Dir(rel))
	}
	check()
}

// The group exists while the process runs, with the process in it.
func TestCgroupWhileRunning(t *testing.T) {
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	dir := filepath.Join(mnt, rel)
	c := Command("sleep", "1000")
	c.Cgroup = rel
	p, err := c.Start(testCtx(t))
	cgTestSkipUnsupported(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reap(t, p) })
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatalf("the group of a running process: %v", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(p.Pid()) {
		t.Errorf("cgroup.procs of %s: %q, want just pid %d", rel, b, p.Pid())
	}
	within(t, 20*time.Second, "Stop", func() { p.Stop(context.Background()) })
	if cgTestExists(dir) {
		t.Errorf("group %s still there after Stop returned", rel)
	}
}

// Settings are written before the child runs: the child reads them back
// from its own group.
func TestCgroupSettingsApplied(t *testing.T) {
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	c := sh(`cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
cat "$MNT$cg/cgroup.max.descendants" "$MNT$cg/cgroup.max.depth"
mkdir "$MNT$cg/a" && mkdir "$MNT$cg/a/b" && echo nested-ok
rmdir "$MNT$cg/a/b" "$MNT$cg/a" 2>/dev/null; true`)
	c.Env = append(os.Environ(), "MNT="+mnt)
	c.Cgroup = rel
	c.CgroupSettings = map[string]string{"cgroup.max.descendants": "2", "cgroup.max.depth": "1"}
	out, err := c.Output(testCtx(t))
	cgTestSkipUnsupported(t, err)
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	// max.depth 1 forbids a grandchild group: the settings are in force.
	if string(out) != "2\n1\n" {
		t.Errorf("the child read %q from its group, want %q (and no nested-ok)", out, "2\n1\n")
	}
}

// An unknown setting file, or a value the kernel refuses, fails before
// anything is spawned, and the group we created is removed again.
func TestCgroupBadSettingsNothingSpawned(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]string
		mention  string
	}{
		{"unknown-file", map[string]string{"no.such.file": "1"}, "no.such.file"},
		{"bad-value", map[string]string{"cgroup.max.descendants": "banana"}, "cgroup.max.descendants"},
		{"one-bad-of-two", map[string]string{"cgroup.max.depth": "3", "cgroup.nope": "1"}, "cgroup.nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := leakCheck(t)
			mnt := cgTestMount(t)
			rel := cgTestPath(t)
			marker := filepath.Join(t.TempDir(), "ran")
			c := Command("touch", marker)
			c.Cgroup = rel
			c.CgroupSettings = tc.settings
			p, err := c.Start(testCtx(t))
			cgTestSkipUnsupported(t, err)
			if p != nil {
				reap(t, p)
			}
			if err == nil {
				t.Fatalf("Start with settings %v succeeded", tc.settings)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), "touch") {
				t.Errorf("error %q names neither the setting %q or the command", err, tc.mention)
			}
			if cgTestExists(filepath.Join(mnt, rel)) {
				t.Errorf("group %s left behind after a failed setting", rel)
			}
			if cgTestExists(filepath.Join(mnt, filepath.Dir(rel))) {
				t.Errorf("parent %s left behind after a failed setting", filepath.Dir(rel))
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran despite the failed setting")
			}
			check()
		})
	}
}

// A group that existed before is used as it is and left in place; so is it
// after a failed setting.
func TestCgroupPreexistingNotRemoved(t *testing.T) {
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	dir := filepath.Join(mnt, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	c := sh(`sed -n 's/^0:://p' /proc/self/cgroup`)
	c.Cgroup = rel
	c.CgroupSettings = map[string]string{"cgroup.max.descendants": "5"}
	out, err := c.Output(testCtx(t))
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	if strings.TrimSpace(string(out)) != "/"+rel {
		t.Errorf("child in %q, want /%s", out, rel)
	}
	if !cgTestExists(dir) {
		t.Fatalf("pre-existing group %s was removed", rel)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.max.descendants")); strings.TrimSpace(string(b)) != "5" {
		t.Errorf("cgroup.max.descendants is %q, want 5", b)
	}

	c = Command("true")
	c.Cgroup = rel
	c.CgroupSettings = map[string]string{"no.such.file": "1"}
	if _, err := c.Output(testCtx(t)); err == nil {
		t.Errorf("a bad setting on an existing group succeeded")
	}
	if !cgTestExists(dir) {
		t.Errorf("pre-existing group %s was removed after a failed setting", rel)
	}
}

func TestCgroupInvalidPath(t *testing.T) {
	mnt := cgTestMount(t)
	for _, path := range []string{"/abs", "/", "..", "../escape", "a/../b", "a/.."} {
		c := Command("true")
		c.Cgroup = path
		p, err := c.Start(testCtx(t))
		if p != nil {
			reap(t, p)
		}
		if !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Cgroup %q: %v, want ErrInvalidCommand", path, err)
		}
	}
	if cgTestExists(filepath.Join(mnt, "b")) || cgTestExists(filepath.Join(mnt, "a")) {
		t.Errorf("an invalid Cgroup path created a group")
	}
}

// TestCgroupInChildCgroupRefused: the program's children's cgroup, or one
// below it, is ErrInvalidCommand: its end would kill the program's other
// children. Nothing is created.
func TestCgroupInChildCgroupRefused(t *testing.T) {
	mnt := cgTestMount(t)
	if !childCgroupExpected() {
		t.Skip("no children's cgroup here: cgroup v2 is not writable")
	}
	children, err := childCgroupOfNewChild()
	if err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(children, mnt+"/")
	for _, path := range []string{rel, rel + "/sub"} {
		c := Command("true")
		c.Cgroup = path
		p, err := c.Start(testCtx(t))
		if p != nil {
			reap(t, p)
		}
		if !errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), "other children") {
			t.Errorf("Cgroup %q: %v, want ErrInvalidCommand naming the children's cgroup", path, err)
		}
	}
	if cgTestExists(filepath.Join(children, "sub")) {
		t.Errorf("a refused Cgroup was created")
	}
}

// After the process ends, a descendant that escaped its process group with
// setsid is killed through the cgroup, and the Output call, whose pipe the
// escapee holds, returns promptly.
func TestCgroupKillsEscapedOnExit(t *testing.T) {
	check := leakCheck(t)
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	c := sh(cgTestEscape)
	c.Cgroup = rel
	c.KillTimeout = 20 * time.Second // the cgroup, not the group's grace, must end it
	var out []byte
	var err error
	began := time.Now()
	within(t, 15*time.Second, "Output with an escaped descendant in the cgroup", func() { out, err = c.Output(testCtx(t)) })
	took := time.Since(began)
	cgTestSkipUnsupported(t, err)
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("output %q is no pid", out)
	}
	killPids(t, pid)
	t.Logf("Output returned after %v", took)
	if !isDead(pid) {
		t.Errorf("the setsid'ed sleep %d is alive after Output returned", pid)
	}
	if cgTestExists(filepath.Join(mnt, rel)) {
		t.Errorf("group %s still there after the run", rel)
	}
	check()
}

// Stop reaches processes in the cgroup outside the process group too.
func TestCgroupStopKillsEscaped(t *testing.T) {
	check := leakCheck(t)
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	ctx := testCtx(t)
	c := sh(cgTestEscape + "; wait")
	c.Cgroup = rel
	p, err := c.Start(ctx)
	cgTestSkipUnsupported(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reap(t, p) })
	pid := readPids(t, bufio.NewReader(p.Stdout), 1)[0]
	killPids(t, pid)
	if isDead(pid) {
		t.Fatalf("sleep %d died early", pid)
	}
	within(t, 20*time.Second, "Stop", func() { p.Stop(context.Background()) })
	if !isDead(pid) {
		t.Errorf("the setsid'ed sleep %d is alive after Stop returned", pid)
	}
	if cgTestExists(filepath.Join(mnt, rel)) {
		t.Errorf("group %s still there after Stop", rel)
	}
	p.Stdout.Close()
	check()
}

// Processes started at the same moment in sibling groups under one parent
// that does not exist yet, and ending at the same moment: each creates what
// is missing and removes what it created, and none trips over another's
// mkdir or rmdir of the parent. (Think of two Daemons in "myapp/web" and
// "myapp/worker" under one errgroup.)
func TestCgroupConcurrentSiblings(t *testing.T) {
	check := leakCheck(t)
	mnt := cgTestMount(t)
	parent := fmt.Sprintf("netrunner-test-%d-shared", os.Getpid())
	const n, rounds = 8, 10
	t.Cleanup(func() {
		for i := range n {
			cgTestRemove(t, filepath.Join(mnt, parent, "a/b", strconv.Itoa(i)))
		}
		for _, d := range []string{"a/b", "a", ""} {
			cgTestRemove(t, filepath.Join(mnt, parent, d))
		}
	})
	var errs []error
	for range rounds {
		var wg sync.WaitGroup
		roundErrs := make([]error, n)
		ready := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				c := Command("true")
				c.Cgroup = fmt.Sprintf("%s/a/b/%d", parent, i)
				<-ready
				p, err := c.Start(testCtx(t))
				if err == nil {
					err = p.Wait(context.Background())
					p.Stdout.Close()
				}
				roundErrs[i] = err
			})
		}
		close(ready)
		wg.Wait()
		for _, err := range roundErrs {
			cgTestSkipUnsupported(t, err)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		t.Errorf("%d of %d starts in sibling cgroups failed, e.g. %v", len(errs), n*rounds, errors.Join(errs[:min(len(errs), 3)]...))
	}
	check()
}

// cgroupHelperParent plays a program that started, in a cgroup, a shell
// whose background sleep left the process group (setsid); it prints the
// sleep's and the shell's pid, then waits to be SIGKILLed.
func cgroupHelperParent() {
	c := sh(cgTestEscape + "; wait")
	c.Cgroup = os.Getenv("NETRUNNER_CGROUP_TEST_PATH")
	p, err := c.Start(context.Background())
	if errors.Is(err, ErrUnsupported) {
		fmt.Printf("unsupported %v\n", err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cgroup helper: %v\n", err)
		os.Exit(1)
	}
	line, err := bufio.NewReader(p.Stdout).ReadString('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "cgroup helper: reading the pid: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("ready %s %d\n", strings.TrimSpace(line), p.Pid())
	for {
		time.Sleep(time.Hour)
	}
}

// The parent-death watchdog kills the whole cgroup, escapees included, when
// the Go program is SIGKILLed, and removes the cgroups the program created.
func TestCgroupParentDeath(t *testing.T) {
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	helper := helperCommand("cgroup-parent", "NETRUNNER_CGROUP_TEST_PATH="+rel)
	helper.Stdout, helper.Stderr = pw, os.Stderr
	err = helper.Start()
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			helper.Process.Kill()
			helper.Wait()
		}
	})
	pr.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's stdout: %q, %v", line, err)
	}
	if msg, ok := strings.CutPrefix(line, "unsupported "); ok {
		t.Skipf("cgroup v2 not usable: %s", msg)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ready" {
		t.Fatalf("helper said %q", line)
	}
	sleepPid, _ := strconv.Atoi(f[1])
	shPid, _ := strconv.Atoi(f[2])
	if sleepPid <= 1 || shPid <= 1 {
		t.Fatalf("helper said %q", line)
	}
	killPids(t, sleepPid, shPid)
	if isDead(sleepPid) || isDead(shPid) {
		t.Fatalf("sleep %d or sh %d died before the helper did", sleepPid, shPid)
	}
	if pi, _ := procStat(sleepPid); pi.sid != sleepPid {
		t.Fatalf("sleep %d is in session %d, not one of its own: it did not escape", sleepPid, pi.sid)
	}

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	helper.Wait()
	waited = true
	if !eventually(5*time.Second, func() bool { return isDead(sleepPid) && isDead(shPid) }) {
		t.Fatalf("5s after the parent was SIGKILLed: sleep %d dead %v, sh %d dead %v",
			sleepPid, isDead(sleepPid), shPid, isDead(shPid))
	}
	took := time.Since(killed)
	t.Logf("the cgroup's processes were dead %v after the parent's SIGKILL", took)
	if took > time.Second {
		t.Errorf("the cgroup's processes took %v to die after the parent's SIGKILL; the contract says within a second", took)
	}
	// The watchdog removes what the package created: the group and its
	// parent, which did not exist before.
	for _, d := range []string{filepath.Join(mnt, rel), filepath.Dir(filepath.Join(mnt, rel))} {
		if !eventually(5*time.Second, func() bool { return !cgTestExists(d) }) {
			t.Errorf("%s, created by the dead program, still there 5s after its SIGKILL", d)
		}
	}
}
