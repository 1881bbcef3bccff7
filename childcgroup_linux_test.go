package netrunner

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// The children's cgroup (internal/watchdog/childcgroup_linux.go) under what
// hostile or careless users, admins and kernels do to it. Each helper plays
// a program that something happens to.

func init() {
	testHelpers["childcgroup-victim"] = childCgroupHelperVictim
	testHelpers["childcgroup-pidns"] = childCgroupHelperPidns
	testHelpers["childcgroup-moved"] = childCgroupHelperMoved
	testHelpers["childcgroup-output"] = childCgroupHelperOutput
	testHelpers["childcgroup-child-pid"] = childCgroupHelperChildPid
	testHelpers["childcgroup-level"] = childCgroupHelperLevel
	testHelpers["childcgroup-owncg"] = childCgroupHelperOwnCgroup
	testHelpers["childcgroup-rmdir"] = childCgroupHelperRmdir
	testHelpers["childcgroup-moved-nobody"] = childCgroupHelperMovedNobody
	testHelpers["childcgroup-landlocked"] = childCgroupHelperLandlocked
	testHelpers["childcgroup-setuid-live"] = childCgroupHelperSetuidWithLiveChild
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
	cgfd := cgTestOpen(t, dir)

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
	cgfd := cgTestOpen(t, filepath.Join(dir, "a/b"))
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
	cgfd := cgTestOpen(t, dir)
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

// childCgroupHelperLevel moves itself into NETRUNNER_TEST_MOVE_TO, then for each
// cgroup path read from stdin starts a sleep with that Cgroup, says
// "started", and ends it at the next line.
func childCgroupHelperLevel() {
	if err := os.WriteFile(filepath.Join(os.Getenv("NETRUNNER_TEST_MOVE_TO"), "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		watchdogHelperFail("move: %v", err)
	}
	in := bufio.NewReader(os.Stdin)
	for {
		rel, err := in.ReadString('\n')
		if err != nil {
			return
		}
		c := Command("sleep", "1000")
		c.Cgroup = strings.TrimSpace(rel)
		p, err := c.Start(context.Background())
		if err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		fmt.Println("started")
		in.ReadString('\n')
		p.Kill()
		p.Wait(context.Background())
	}
}

// TestCgroupNotLevelledWhileOthersJoin: the program runs in a once-killed
// cgroup (as in TestChildCgroupProgramInOnceKilledCgroup), so a child
// cannot be forked straight into a Cmd.Cgroup it makes; that cgroup is not
// levelled with cgroup.kill (someone may have moved a process into it
// since it was made), the child is moved in after its fork instead, and an
// outsider that joined lives.
func TestCgroupNotLevelledWhileOthersJoin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	base := filepath.Join(mnt, rel)
	for _, d := range []string{"prog", "level"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Skipf("cgroup v2 not writable: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{"level", "prog"} {
			entries, _ := os.ReadDir(filepath.Join(base, d))
			for _, e := range entries {
				if e.IsDir() {
					cgTestRemove(t, filepath.Join(base, d, e.Name()))
				}
			}
			cgTestRemove(t, filepath.Join(base, d))
		}
	})
	if err := os.WriteFile(filepath.Join(base, "prog", "cgroup.kill"), []byte("1"), 0); err != nil {
		t.Skipf("no cgroup.kill: %v", err)
	}
	helper := helperCommand("childcgroup-level", "NETRUNNER_TEST_MOVE_TO="+filepath.Join(base, "prog"))
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); helper.Process.Kill(); helper.Wait() }()
	r := bufio.NewReader(out)

	killed := 0
	const rounds = 10
	for i := range rounds {
		sub := fmt.Sprintf("level/x%d", i)
		dir := filepath.Join(base, sub)
		outsider := exec.Command("sleep", "1000")
		if err := outsider.Start(); err != nil {
			t.Fatal(err)
		}
		joined := make(chan bool)
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(outsider.Process.Pid)), 0) == nil {
					joined <- true
					return
				}
			}
			joined <- false
		}()
		fmt.Fprintln(stdin, rel+"/"+sub)
		line := readLine(t, r)
		ok := <-joined
		if line != "started" || !ok {
			outsider.Process.Kill()
			outsider.Wait()
			t.Fatalf("round %d: helper said %q, outsider joined: %v", i, line, ok)
		}
		// Our child still runs; the outsider must too.
		if eventually(time.Second, func() bool { return isDead(outsider.Process.Pid) }) {
			killed++
		}
		fmt.Fprintln(stdin, "end")
		outsider.Process.Kill()
		outsider.Wait()
	}
	if killed > 0 {
		t.Errorf("Start with a new Cgroup killed a process that had joined that cgroup in %d of %d rounds", killed, rounds)
	}
}

// childCgroupHelperOwnCgroup runs echo with Cgroup NETRUNNER_TEST_CGROUP, which
// holds the program, and prints what came of it.
func childCgroupHelperOwnCgroup() {
	c := Command("echo", "hi")
	c.Cgroup = os.Getenv("NETRUNNER_TEST_CGROUP")
	out, err := c.Output(context.Background())
	fmt.Printf("%q %v\n", out, err)
}

// TestCgroupRefusedWhereOwnCgroupUnknown: in a cgroup namespace whose
// cgroup2 mount was made outside it (unshare -C), the program cannot tell
// where its own cgroup is, so any Cmd.Cgroup could hold it: refused with
// ErrInvalidCommand, and the program lives.
func TestCgroupRefusedWhereOwnCgroupUnknown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mnt := cgTestMount(t)
	rel := cgTestPath(t)
	dir := filepath.Join(mnt, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	cgfd := cgTestOpen(t, dir)
	cmd := helperCommand("childcgroup-owncg", "NETRUNNER_TEST_CGROUP="+rel)
	cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWCGROUP
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cgfd
	out, err := cmd.CombinedOutput()
	got := strings.TrimSpace(string(out))
	if err != nil || !strings.Contains(got, "invalid command") {
		t.Errorf("program in a cgroup namespace, Cgroup %q holding it: %v: %q; want an invalid-command error and the program alive", rel, err, got)
	}
}

// childCgroupHelperRmdir: like childCgroupHelperRmdir, but the escapee is known to
// have left sh's process group and session before "ready" is printed
// (cgTestEscape), so the race in TestChildCgroupRemovedBetweenStarts that
// sometimes lets it pass is gone.
func childCgroupHelperRmdir() {
	dir, err := childCgroupOfNewChild()
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	if err := os.Remove(dir); err != nil {
		watchdogHelperFail("rmdir: %v", err)
	}
	p, err := Command("sh", "-c", cgTestEscape+"\nexec sleep 1000").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	line, err := bufio.NewReader(p.Stdout).ReadString('\n')
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Printf("ready %d %s\n", p.Pid(), strings.TrimSpace(line))
	watchdogHelperBlock()
}

// TestChildCgroupRemovedEscapeeDies: after the empty children's cgroup was
// removed, the Start that finds it gone makes another and forks its child
// into that one: what the child starts in a session of its own dies with
// the program.
func TestChildCgroupRemovedEscapeeDies(t *testing.T) {
	if os.Geteuid() != 0 || !childCgroupExpected() {
		t.Skip("needs root and the children's cgroup")
	}
	cmd, r, _ := startWatchdogHelper(t, "childcgroup-rmdir")
	line := readLine(t, r)
	var sh, escapee int
	if _, err := fmt.Sscanf(line, "ready %d %d", &sh, &escapee); err != nil {
		t.Fatalf("helper said %q", line)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", escapee))
	t.Logf("escapee %d in %q", escapee, strings.TrimSpace(string(b[strings.LastIndex(strings.TrimSpace(string(b)), "\n")+1:])))
	cmd.Process.Kill()
	childCgroupAllDead(t, sh, escapee)
}

// childCgroupHelperSetuidWithLiveChild: a root program starts a sleep (forked into
// the children's cgroup), drops to nobody, starts another, and prints
// "ready FIRST SECOND".
func childCgroupHelperSetuidWithLiveChild() {
	first, err := Command("sleep", "1000").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", first.Pid()))
	mount, _ := watchdog.Cgroup2Mount()
	dir := mount + strings.TrimSpace(string(b[strings.LastIndex(string(b), "0::")+3:]))
	for _, err := range []error{syscall.Setgroups(nil), syscall.Setgid(65534), syscall.Setuid(65534)} {
		if err != nil {
			watchdogHelperFail("%v", err)
		}
	}
	second, err := Command("sleep", "1000").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	fmt.Printf("ready %d %d %s\n", first.Pid(), second.Pid(), dir)
	watchdogHelperBlock()
}

// TestChildCgroupSetuidKeepsLiveChildren: after a setuid, forks into the
// children's cgroup fail; it is no longer forked into but stays registered,
// so the child still in it dies with the program, and the watchdog removes
// it then.
func TestChildCgroupSetuidKeepsLiveChildren(t *testing.T) {
	if os.Geteuid() != 0 || !childCgroupExpected() {
		t.Skip("needs root and the children's cgroup")
	}
	cmd, r, _ := startWatchdogHelper(t, "childcgroup-setuid-live")
	line := readLine(t, r)
	var first, second int
	var dir string
	if _, err := fmt.Sscanf(line, "ready %d %d %s", &first, &second, &dir); err != nil {
		t.Fatalf("helper said %q", line)
	}
	t.Logf("first child %d, second %d, children's cgroup %s", first, second, dir)
	cmd.Process.Kill()
	childCgroupAllDead(t, first, second)
	// Issue 11 item 4: the cgroups the package made are gone after the
	// program's death.
	if !eventually(5*time.Second, func() bool { return !cgTestExists(dir) }) {
		t.Errorf("the children's cgroup %s is left behind", dir)
		os.Remove(dir)
	}
}

// childCgroupHelperLandlocked: after its first Start, the program sandboxes
// itself with Landlock (no file writes, no signals outside its domain), as a
// careful program does before it handles untrusted input, then (compromised,
// or just asked to) registers the cgroup NETRUNNER_TEST_VICTIM with its
// watchdog and exits. It prints what it could do itself.
func childCgroupHelperLandlocked() {
	if _, err := Command("true").Output(context.Background()); err != nil {
		watchdogHelperFail("%v", err)
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: unix.LANDLOCK_ACCESS_FS_WRITE_FILE, Scoped: unix.LANDLOCK_SCOPE_SIGNAL}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		fmt.Printf("no landlock: %v\n", e)
		return
	}
	// On every thread of the program, as Go's Landlock libraries do; a
	// binary with cgo cannot, so there this thread alone, which does all
	// that follows. (A CGO_ENABLED=0 program confined on every thread was
	// seen to fail the same way.)
	confine := syscall.AllThreadsSyscall
	if _, _, e := confine(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e == syscall.ENOTSUP {
		runtime.LockOSThread()
		confine = syscall.RawSyscall
		unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	} else if e != 0 {
		watchdogHelperFail("%v", e)
	}
	if _, _, e := confine(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		fmt.Printf("no landlock: %v\n", e)
		return
	}
	victim := os.Getenv("NETRUNNER_TEST_VICTIM")
	pid, _ := strconv.Atoi(os.Getenv("NETRUNNER_TEST_VICTIM_PID"))
	fmt.Printf("write cgroup.kill: %v; kill(2): %v; watchdog accepts: %v\n",
		os.WriteFile(filepath.Join(victim, "cgroup.kill"), []byte("1"), 0),
		unix.Kill(pid, unix.SIGKILL), watchdog.WatchCgroup(victim, 0))
}

// TestWatchdogRefusesSandboxedProgram: a program that confined itself with
// Landlock after its watchdog started can neither write a cgroup's
// cgroup.kill nor signal its processes; the watchdog, which compares every
// thread's ids, capabilities, no_new_privs and seccomp, refuses that cgroup
// for it, and the victim lives.
func TestWatchdogRefusesSandboxedProgram(t *testing.T) {
	mnt := cgTestMount(t)
	dir := filepath.Join(mnt, cgTestPath(t))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	cgfd := cgTestOpen(t, dir)
	victim := exec.Command("sleep", "1000")
	victim.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	if err := victim.Start(); err != nil {
		t.Skipf("cannot fork into a cgroup: %v", err)
	}
	defer func() { victim.Process.Kill(); victim.Wait() }()
	out, err := helperCommand("childcgroup-landlocked", "NETRUNNER_TEST_VICTIM="+dir,
		"NETRUNNER_TEST_VICTIM_PID="+strconv.Itoa(victim.Process.Pid)).CombinedOutput()
	got := strings.TrimSpace(string(out))
	t.Log(got)
	if err != nil || strings.HasPrefix(got, "no landlock") {
		t.Skipf("helper: %v: %s", err, got)
	}
	if eventually(2*time.Second, func() bool { return isDead(victim.Process.Pid) }) {
		t.Errorf("a cgroup the sandboxed program could neither kill nor signal was killed by its watchdog")
	}
}

// childCgroupHelperMovedNobody drops to nobody, starts a sleep, says "ready",
// and after a line on stdin (it was moved meanwhile) runs true and prints
// how that went.
func childCgroupHelperMovedNobody() {
	for _, err := range []error{syscall.Setgroups(nil), syscall.Setgid(65534), syscall.Setuid(65534)} {
		if err != nil {
			watchdogHelperFail("%v", err)
		}
	}
	p, err := Command("sleep", "1000").Start(context.Background())
	if err != nil {
		watchdogHelperFail("%v", err)
	}
	defer func() { p.Kill(); p.Wait(context.Background()) }()
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	_, err = Command("true").Output(context.Background())
	fmt.Printf("second: %v\n", err)
}

// TestChildCgroupStartAfterMoveAsNobody: an unprivileged program in a
// delegated cgroup (it owns a and b, not their parent) is moved from a to b,
// as an admin or its service manager may. Forking into its children's
// cgroup below a then needs write access it lacks (the common ancestor's
// cgroup.procs); the probe says so, and Starts go on, the fallback way.
func TestChildCgroupStartAfterMoveAsNobody(t *testing.T) {
	if os.Geteuid() != 0 || !childCgroupExpected() {
		t.Skip("needs root and the children's cgroup")
	}
	mnt := cgTestMount(t)
	dir := filepath.Join(mnt, cgTestPath(t))
	for _, d := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Skipf("cgroup v2 not writable: %v", err)
		}
		for _, f := range []string{"", "cgroup.procs"} {
			if err := os.Chown(filepath.Join(dir, d, f), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{"a", "b"} {
			entries, _ := os.ReadDir(filepath.Join(dir, d))
			for _, e := range entries {
				if e.IsDir() {
					cgTestRemove(t, filepath.Join(dir, d, e.Name()))
				}
			}
			cgTestRemove(t, filepath.Join(dir, d))
		}
	})
	cgfd := cgTestOpen(t, filepath.Join(dir, "a"))
	helper := helperCommand("childcgroup-moved-nobody")
	helper.SysProcAttr.UseCgroupFD, helper.SysProcAttr.CgroupFD = true, cgfd
	helper.Stderr = os.Stderr
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); helper.Process.Kill(); helper.Wait() }()
	r := bufio.NewReader(out)
	if line := readLine(t, r); line != "ready" {
		t.Fatalf("helper said %q", line)
	}
	if err := os.WriteFile(filepath.Join(dir, "b", "cgroup.procs"), []byte(strconv.Itoa(helper.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	if line := readLine(t, r); line != "second: <nil>" {
		t.Errorf("Start after the program was moved: %q", line)
	}
}

// cgTestOpen opens the cgroup directory dir, for a helper forked straight
// into it; it is closed at the end of the test.
func cgTestOpen(t *testing.T, dir string) int {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}
