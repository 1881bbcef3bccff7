package netrunner

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// The children's cgroup (internal/watchdog/childcgroup_linux.go) under what
// hostile or careless users, admins and kernels do to it. Each helper plays
// a program that something happens to.

func init() {
	testHelpers["childcgroup-rmdir"] = childCgroupHelperRmdir
	testHelpers["childcgroup-setuid"] = childCgroupHelperSetuid
	testHelpers["childcgroup-pids"] = childCgroupHelperPids
	testHelpers["childcgroup-victim"] = childCgroupHelperVictim
	testHelpers["childcgroup-pidns"] = childCgroupHelperPidns
	testHelpers["childcgroup-moved"] = childCgroupHelperMoved
	testHelpers["childcgroup-output"] = childCgroupHelperOutput
	testHelpers["childcgroup-child-pid"] = childCgroupHelperChildPid
}

// childCgroupHelperChildPid starts a sleep, prints its pid and waits.
func childCgroupHelperChildPid() {
	p, err := Command("sleep", "1000").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Println(p.Pid())
	watchdogHelperBlock()
}

// childCgroupHelperOutput runs echo and prints what came of it.
func childCgroupHelperOutput() {
	if dir := os.Getenv("NETRUNNER_TEST_MOVE_TO"); dir != "" {
		// Moved, not forked in: a fork into it would be killed (see below).
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
			watchdogHelperFail("move: %v", err)
		}
	}
	out, err := Command("echo", "hello").Output(context.Background())
	fmt.Printf("%q %v\n", out, err)
}

// childCgroupHelperMoved starts a child, is moved (as systemd or an admin may
// move a process) from NETRUNNER_TEST_CGROUP/a/b to .../c, then runs a
// command with Cgroup NETRUNNER_TEST_CGROUP/a, which no longer holds the
// program but holds its children's cgroup and its watchdog.
func childCgroupHelperMoved() {
	rel := os.Getenv("NETRUNNER_TEST_CGROUP")
	mount, _ := watchdog.Cgroup2Mount()
	p, err := Command("sleep", "1000").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := os.WriteFile(filepath.Join(mount, rel, "c", "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
		watchdogHelperFail("move: %v", err)
	}
	c := Command("true")
	c.Cgroup = rel + "/a"
	_, err = c.Output(context.Background())
	// Killed, the first child is a zombie until its supervisor reaps it.
	alive := true
	select {
	case <-p.Done():
		alive = false
	case <-time.After(time.Second):
	}
	cgOf := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return strings.TrimSpace(string(b))
	}
	fmt.Printf("run: %v; first child alive: %v; WatchdogErr: %v; child in %s, watchdog in %s\n", err, alive, WatchdogErr(), cgOf(p.Pid()), cgOf(watchdog.Pid()))
	p.Kill()
	p.Wait(context.Background())
}

// childCgroupHelperVictim runs a command, says "ready", waits for a line on its
// stdin, then runs another and prints how it went.
func childCgroupHelperVictim() {
	if _, err := Command("true").Output(context.Background()); err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	_, err := Command("true").Output(context.Background())
	fmt.Printf("second: %v\n", err)
}

// childCgroupHelperPidns runs in a PID namespace of its own (as under unshare
// -pf or bwrap --unshare-pid), in the same cgroup as the victim: it mounts
// its own /proc and runs a command.
func childCgroupHelperPidns() {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		watchdogHelperFail("%v", err)
	}
	_, err := Command("true").Output(context.Background())
	fmt.Printf("pid %d ran: %v\n", os.Getpid(), err)
}

// childCgroupStartLeader starts sh, which starts a sleep that leaves for a session
// of its own, and prints "PID1 PID2" (sh's own pid, which execs sleep, and
// the escapee's), or "error ERR".
func childCgroupStartLeader() {
	p, err := Command("sh", "-c", "setsid sleep 1000 & echo $$ $!; exec sleep 1000").Start(context.Background())
	if err != nil {
		fmt.Printf("error %v\n", err)
		watchdogHelperBlock()
	}
	line, err := bufio.NewReader(p.Stdout).ReadString('\n')
	if err != nil {
		fmt.Printf("error reading pids: %v\n", err)
		watchdogHelperBlock()
	}
	fmt.Printf("ready %s %d\n", strings.TrimSpace(line), watchdog.Pid())
	watchdogHelperBlock()
}

// childCgroupHelperRmdir: someone removes the (empty) children's cgroup between
// two Starts.
func childCgroupHelperRmdir() {
	children, err := childCgroupOfNewChild()
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := os.Remove(children); err != nil {
		watchdogHelperFail("rmdir: %v", err)
	}
	childCgroupStartLeader()
}

// childCgroupHelperSetuid: a root program that started a child drops its
// privileges to nobody, then starts another.
func childCgroupHelperSetuid() {
	if _, err := Command("true").Output(context.Background()); err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := syscall.Setgid(65534); err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := syscall.Setuid(65534); err != nil {
		watchdogHelperFail("%v", err)
	}
	childCgroupStartLeader()
}

// childCgroupHelperPids: a plain program with one child and its escapee.
func childCgroupHelperPids() { childCgroupStartLeader() }

func childCgroupReady(t *testing.T, name string, env ...string) (*os.Process, []int) {
	t.Helper()
	cmd, r, _ := startWatchdogHelper(t, name, env...)
	line := readLine(t, r)
	var sh, escapee, wd int
	if _, err := fmt.Sscanf(line, "ready %d %d %d", &sh, &escapee, &wd); err != nil {
		t.Fatalf("helper said %q", line)
	}
	return cmd.Process, []int{sh, escapee, wd}
}

func childCgroupAllDead(t *testing.T, pids ...int) {
	t.Helper()
	if !eventually(5*time.Second, func() bool {
		for _, pid := range pids {
			if !isDead(pid) {
				return false
			}
		}
		return true
	}) {
		for _, pid := range pids {
			if !isDead(pid) {
				t.Errorf("pid %d alive 5 s after the program's SIGKILL", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// TestChildCgroupRemovedBetweenStarts: the children's cgroup is empty
// between Starts, so anyone may rmdir it. The next Start makes another, and
// its child and what that started in a session of its own die with the
// program.
func TestChildCgroupRemovedBetweenStarts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to remove the cgroup")
	}
	prog, pids := childCgroupReady(t, "childcgroup-rmdir")
	prog.Kill()
	childCgroupAllDead(t, pids[0], pids[1])
}

// TestChildCgroupStartAfterSetuid: a root program drops to nobody after its
// first Start; later Starts still work (children registered one by one, as
// nobody cannot write the cgroups), and the child dies with the program.
func TestChildCgroupStartAfterSetuid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	prog, pids := childCgroupReady(t, "childcgroup-setuid")
	// Registered by its group, the escapee outlives the program, as
	// documented: it is the test's to end.
	killPids(t, pids[1])
	prog.Kill()
	childCgroupAllDead(t, pids[0])
}

// TestChildCgroupOtherPidNamespaceSweepsNothing: a program in another PID
// namespace but the same cgroup sees every other program's pid as gone
// (kill(pid, 0) is ESRCH); the sweep of stale children's cgroups goes only
// by those of its own namespace, so the other program's next Start works.
// Both helpers run in a cgroup of the test's own.
func TestChildCgroupOtherPidNamespaceSweepsNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	mnt := cgTestMount(t)
	dir := filepath.Join(mnt, cgTestPath(t))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	t.Cleanup(func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				cgTestRemove(t, filepath.Join(dir, e.Name()))
			}
		}
	})
	cgfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(cgfd)

	victim := helperCommand("childcgroup-victim")
	victim.SysProcAttr.UseCgroupFD, victim.SysProcAttr.CgroupFD = true, cgfd
	stdin, err := victim.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := victim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { victim.Process.Kill(); victim.Wait() }()
	r := bufio.NewReader(out)
	if line := readLine(t, r); line != "ready" {
		t.Fatalf("victim said %q", line)
	}

	ns := helperCommand("childcgroup-pidns")
	ns.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS
	ns.SysProcAttr.UseCgroupFD, ns.SysProcAttr.CgroupFD = true, cgfd
	b, err := ns.CombinedOutput()
	if err != nil {
		t.Skipf("no PID namespace here: %v: %s", err, b)
	}
	t.Logf("in the namespace: %s", strings.TrimSpace(string(b)))

	stdin.Write([]byte("go\n"))
	if line := readLine(t, r); line != "second: <nil>" {
		t.Errorf("victim's Start after the other program's first: %q", line)
	}
}

// TestCgroupHoldingChildCgroupRefusedAfterMove: after the program was moved out
// of its cgroup, a Cmd.Cgroup that is an ancestor of its children's cgroup
// (and of its watchdog) passes the own-cgroup check; ending that command
// must not kill the program's other children.
func TestCgroupHoldingChildCgroupRefusedAfterMove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	dir := filepath.Join(mnt, rel)
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Skipf("cgroup v2 not writable: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{"a/b", "a", "c"} {
			entries, _ := os.ReadDir(filepath.Join(dir, d))
			for _, e := range entries {
				if e.IsDir() {
					cgTestRemove(t, filepath.Join(dir, d, e.Name()))
				}
			}
			cgTestRemove(t, filepath.Join(dir, d))
		}
	})
	cgfd, err := syscall.Open(filepath.Join(dir, "a/b"), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(cgfd)
	cmd := helperCommand("childcgroup-moved", "NETRUNNER_TEST_CGROUP="+rel)
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cgfd
	out, err := cmd.CombinedOutput()
	line := strings.TrimSpace(string(out))
	t.Log(line)
	if err != nil || !strings.Contains(line, "first child alive: true") {
		t.Errorf("helper: %v: %s", err, line)
	}
}

// TestChildCgroupProgramInOnceKilledCgroup: the program runs in a cgroup on
// which cgroup.kill was written once before (by a supervisor that reuses it,
// or by a netrunner program whose Cmd.Cgroup it was). Some kernels (6.18
// here) SIGKILL a child forked with CLONE_INTO_CGROUP at once when the kill
// counts of the fork's cgroup and of the target differ; the children's
// cgroup is brought level before it is used, and the child runs.
func TestChildCgroupProgramInOnceKilledCgroup(t *testing.T) {
	mnt := cgTestMount(t)
	dir := filepath.Join(mnt, cgTestPath(t))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	t.Cleanup(func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				cgTestRemove(t, filepath.Join(dir, e.Name()))
			}
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		t.Skipf("no cgroup.kill: %v", err)
	}
	out, err := helperCommand("childcgroup-output", "NETRUNNER_TEST_MOVE_TO="+dir).CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != `"hello\n" <nil>` {
		t.Errorf("helper: %v: %s", err, got)
	}
}

// TestCgroupReusedAfterEnd: commands one after the other in the same
// existing Cmd.Cgroup. The first one's end writes cgroup.kill, after which
// such kernels kill every child forked straight into that cgroup: then the
// child is moved in after its fork instead, and runs.
func TestCgroupReusedAfterEnd(t *testing.T) {
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	if err := os.MkdirAll(filepath.Join(mnt, rel), 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	for i := range 3 {
		c := Command("echo", "hello")
		c.Cgroup = rel
		out, err := c.Output(testCtx(t))
		if err != nil || string(out) != "hello\n" {
			t.Errorf("run %d in the same cgroup: %q %v", i, out, err)
		}
	}
}

// TestChildCgroupInCgroupNamespace: a program in a cgroup namespace of
// its own (unshare -C; a container whose cgroup2 mount was made outside it)
// reads "0::/" from /proc/self/cgroup while the mount shows the whole
// hierarchy; its children must still be below its own cgroup, not in a
// netrunner-PID at the hierarchy's root, outside its limits.
func TestChildCgroupInCgroupNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	dir := filepath.Join(mnt, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	cgfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(cgfd)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := helperCommand("childcgroup-child-pid")
	cmd.Stdout = pw
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWCGROUP
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cgfd
	err = cmd.Start()
	pw.Close()
	if err != nil {
		t.Skipf("no cgroup namespace: %v", err)
	}
	var childPid int
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		// Its children's cgroup, wherever it went, is removed by its watchdog.
		eventually(5*time.Second, func() bool { return isDead(childPid) })
	}()
	line := readLine(t, bufio.NewReader(pr))
	if _, err := fmt.Sscan(line, &childPid); err != nil {
		t.Fatalf("helper said %q", line)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", childPid))
	got := strings.TrimSpace(string(b)[strings.Index(string(b), "0::")+3:])
	if got != "/"+rel && !strings.HasPrefix(got, "/"+rel+"/") {
		t.Errorf("the child is in %s, outside the program's cgroup /%s", got, rel)
	}
}
