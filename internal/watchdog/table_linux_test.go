//go:build linux

package watchdog

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFeedSplitsLines: lines split across reads anywhere are put together,
// and the exit line ends the feed.
func TestFeedSplitsLines(t *testing.T) {
	var stream []byte
	var want []string
	for i := range 300 {
		line := fmt.Sprintf("+g %d", 1000+i)
		if i%7 == 0 {
			line = fmt.Sprintf("+c 2 %q", fmt.Sprintf("/sys/fs/cgroup/x %d\n", i))
		}
		stream = append(append(stream, line...), '\n')
		want = append(want, line)
	}
	for _, chunk := range []int{1, 2, 3, 5, 13, 100, 4096, len(stream)} {
		var got []string
		var pending []byte
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			var exit bool
			pending, exit = feed(pending, rest[:n], func(l []byte) { got = append(got, string(l)) })
			if exit {
				t.Fatalf("chunks of %d: exit without an exit line", chunk)
			}
			rest = rest[n:]
		}
		if len(pending) != 0 || !slices.Equal(got, want) {
			t.Errorf("chunks of %d: pending %q, %d lines; want none and %d", chunk, pending, len(got), len(want))
		}
	}
	var got []string
	_, exit := feed(nil, []byte("+g 5\nx\n+g 6\n"), func(l []byte) { got = append(got, string(l)) })
	if !exit || !slices.Equal(got, []string{"+g 5"}) {
		t.Errorf("exit line: exit %v, lines %q; want true and only the line before it", exit, got)
	}
}

// shell starts sh -c script as a child of the test process leading its own
// group; the script's first line of output is a list of pids.
func shell(t *testing.T, script string) (*exec.Cmd, []int) {
	t.Helper()
	c := exec.Command("sh", "-c", script)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	t.Cleanup(func() {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		c.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("sh: %q, %v", line, err)
	}
	for _, f := range strings.Fields(line) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("sh said %q", line)
		}
		pids = append(pids, pid)
	}
	return c, pids
}

// waitLeads waits until pid, run by setsid, leads a group of its own.
func waitLeads(t *testing.T, pid int) {
	t.Helper()
	leads := func() bool { f, _ := statFields(pid); return f != nil && f[2] == strconv.Itoa(pid) }
	for deadline := time.Now().Add(10 * time.Second); !leads(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d does not lead a group of its own", pid)
		}
	}
}

// testTable is a table that acts for the test process.
func testTable() *table {
	t := newTable(os.Getpid())
	t.parentIs = func() bool { return true }
	return t
}

// TestTableAcceptsOnlyTheParentsGroups: a group is accepted only when its
// leader is a child of the parent and leads it. Everything else is refused,
// and every '+' line is answered.
func TestTableAcceptsOnlyTheParentsGroups(t *testing.T) {
	tab := testTable()
	t.Cleanup(func() { tab.close() })
	// sh leads its group; its background sleep is a member; the setsid'ed
	// sleep leads a group but is sh's child, not ours. notLeader is our
	// child outside a group of its own, as a child that left its group is:
	// accepted, and killed through its pidfd.
	sh, pids := shell(t, "sleep 1000 & m=$!; setsid sleep 1000 & echo $m $!; wait")
	leader, member, grandchild := sh.Process.Pid, pids[0], pids[1]
	waitLeads(t, grandchild)
	notLeader := exec.Command("sleep", "1000") // in the test's own group
	if err := notLeader.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		notLeader.Process.Kill()
		notLeader.Wait()
	})
	for _, tc := range []struct {
		line string
		want byte
	}{
		{"+g " + strconv.Itoa(leader), replyAccepted},
		{"+g " + strconv.Itoa(leader), replyAccepted}, // counted
		{"+g " + strconv.Itoa(member), replyRefused},
		{"+g " + strconv.Itoa(grandchild), replyRefused},
		{"+g " + strconv.Itoa(notLeader.Process.Pid), replyAccepted},
		{"+g " + strconv.Itoa(os.Getpid()), replyRefused},
		{"+g 1", replyRefused}, {"+g 0", replyRefused}, {"+g -7", replyRefused},
		{"+g " + strconv.Itoa(fakePgid), replyAccepted}, // no leader, no member: nothing to watch
		{"+g x", replyRefused}, {"+g", replyRefused}, {"+g  5", replyRefused}, {"+x 5", replyRefused}, {"+", replyRefused},
		{`+c 0 "/x"`, replyRefused},
		{"-g 12a", 0}, {"*g 5", 0}, {"", 0}, {"-c unquoted", 0},
	} {
		if got := tab.apply([]byte(tc.line)); got != tc.want {
			t.Errorf("apply(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
	if g := tab.groups[leader]; len(tab.groups) != 2 || g == nil || g.count != 2 {
		t.Fatalf("groups %v, want %d counted twice and %d", tab.groups, leader, notLeader.Process.Pid)
	}
	for range 3 { // one too many: harmless
		tab.apply([]byte("-g " + strconv.Itoa(leader)))
	}
	tab.apply([]byte("-g " + strconv.Itoa(notLeader.Process.Pid)))
	if len(tab.groups) != 0 {
		t.Fatalf("groups %v after forgetting, want none", tab.groups)
	}
}

// TestTableKillsRegisteredGroups: the kill reaches every process of a
// registered group, and nothing of a group that was refused or forgotten.
func TestTableKillsRegisteredGroups(t *testing.T) {
	tab := testTable()
	sh, pids := shell(t, "sleep 1000 & setsid sleep 1000 & echo $! $!; wait")
	_, forgotten := shell(t, "sleep 1000 & echo $!; wait")
	kept := pids[0]
	waitLeads(t, kept)
	leader := sh.Process.Pid
	member := 0
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", leader, leader)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(f); pid != kept {
				member = pid
			}
		}
	}
	if member == 0 {
		t.Fatal("cannot find sh's background sleep")
	}
	forgottenLeader := 0
	if f, _ := statFields(forgotten[0]); f != nil {
		forgottenLeader, _ = strconv.Atoi(f[2])
	}
	for _, line := range []string{"+g " + strconv.Itoa(leader), "+g " + strconv.Itoa(kept), "+g " + strconv.Itoa(forgottenLeader), "-g " + strconv.Itoa(forgottenLeader)} {
		tab.apply([]byte(line))
	}
	tab.kill()
	tab.close()
	waitDead(t, time.Second, "the registered group", leader, member)
	for _, pid := range append([]int{kept, forgottenLeader}, forgotten...) {
		if isDead(pid) {
			t.Errorf("pid %d of a group refused or forgotten was killed", pid)
		}
	}
}

// TestTableKillsLeaderlessGroup: a line read after its leader was reaped
// (a quick child, or one killed with the program) still gets what is left
// of the group killed.
func TestTableKillsLeaderlessGroup(t *testing.T) {
	tab := testTable()
	c := exec.Command("sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := c.Output()
	if err != nil {
		t.Fatal(err)
	}
	member, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("sh said %q", out)
	}
	t.Cleanup(func() { syscall.Kill(member, syscall.SIGKILL) })
	leader := c.Process.Pid // reaped by Output
	if got := tab.apply([]byte("+g " + strconv.Itoa(leader))); got != replyAccepted {
		t.Fatalf("registration of a leaderless group answered %q", got)
	}
	tab.kill()
	tab.close()
	waitDead(t, time.Second, "the member of the leaderless group", member)
}

// TestTableKillsLeaderThatLeftItsGroup: a registered child that moved
// itself into another process group is killed all the same, through the
// pidfd held since its registration, and so is the rest of its first group.
func TestTableKillsLeaderThatLeftItsGroup(t *testing.T) {
	tab := testTable()
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "NETRUNNER_TEST_HELPER=leave-group", "NETRUNNER_TEST_PGRP="+strconv.Itoa(syscall.Getpgrp()))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	leader := c.Process.Pid
	var member int
	t.Cleanup(func() {
		syscall.Kill(leader, syscall.SIGKILL)
		if member > 0 {
			syscall.Kill(member, syscall.SIGKILL)
		}
		c.Wait()
	})
	if got := tab.apply([]byte("+g " + strconv.Itoa(leader))); got != replyAccepted {
		t.Fatalf("registration of our child answered %q", got)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if member, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	if f, err := statFields(leader); err != nil || f[2] == strconv.Itoa(leader) {
		t.Fatalf("the helper did not leave its group: %v %v", f, err)
	}
	tab.kill()
	tab.close()
	waitDead(t, time.Second, "the leader that left its group, and its first group", leader, member)
}

func init() {
	// leave-group starts a member of its group, says its pid once it has
	// moved itself into the group NETRUNNER_TEST_PGRP, and sleeps.
	testHelpers["leave-group"] = func() {
		member := exec.Command("sleep", "1000")
		if err := member.Start(); err != nil {
			os.Exit(3)
		}
		pgrp, _ := strconv.Atoi(os.Getenv("NETRUNNER_TEST_PGRP"))
		if err := syscall.Setpgid(0, pgrp); err != nil {
			os.Exit(4)
		}
		fmt.Println(member.Process.Pid)
		time.Sleep(time.Hour)
	}
}

// TestTableCgroups: a cgroup is accepted before anything lives in it, while
// the parent has the watchdog's credentials, unless it is not below the
// cgroup2 root or holds the watchdog; it is killed through the descriptor
// held since, and what the parent created of it is removed; a path removed
// and made again is not touched.
func TestTableCgroups(t *testing.T) {
	base := testCgroup(t)
	dir := filepath.Join(base, "made/leaf")
	other := filepath.Join(base, "other")
	for _, d := range []string{dir, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, filepath.Dir(dir), other} {
			removeCgroup(t, d)
		}
	})
	mount, _ := Cgroup2Mount()
	own, err := SelfCgroup()
	if err != nil {
		t.Fatal(err)
	}
	tab := testTable()
	for _, tc := range []struct {
		line string
		want byte
	}{
		{fmt.Sprintf("+c 9 %q", dir+"/"), replyAccepted}, // nothing lives in it yet
		{fmt.Sprintf("+c 2 %q", dir), replyAccepted},     // counted
		{fmt.Sprintf("+c 2 %q", mount), replyRefused},
		{fmt.Sprintf("+c 2 %q", mount+"/"), replyRefused},
		{fmt.Sprintf("+c 2 %q", filepath.Join(mount, own)), replyRefused}, // holds the watchdog
		{fmt.Sprintf("+c 2 %q", filepath.Dir(filepath.Join(mount, own))), replyRefused},
		{fmt.Sprintf("+c 2 %q", "/tmp"), replyRefused},
		{fmt.Sprintf("+c 2 %q", "relative/x"), replyRefused},
		{fmt.Sprintf("+c 2 %q", mount+"/../tmp"), replyRefused},
		{"+c 2 unquoted", replyRefused}, {"+c x \"/y\"", replyRefused}, {"+c 2", replyRefused},
	} {
		if got := tab.apply([]byte(tc.line)); got != tc.want {
			t.Errorf("apply(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
	if e := tab.cgroups[dir]; e == nil || e.count != 2 || e.created != strings.Count(strings.TrimPrefix(dir, mount), "/") {
		t.Errorf("cgroup entry %+v: not counted twice, or the created levels are not clipped to the mount", e)
	}
	// Registered empty; then a child and what it started in a session of
	// its own move in.
	sh, pids := shell(t, "setsid sleep 1000 & echo $!; wait")
	escapee := pids[0]
	waitLeads(t, escapee)
	if err := moveToCgroup(dir, sh.Process.Pid); err != nil {
		t.Skipf("cannot move a process into a cgroup: %v", err)
	}
	if err := moveToCgroup(dir, escapee); err != nil {
		t.Fatal(err)
	}
	tab.kill()
	tab.close()
	waitDead(t, time.Second, "the cgroup's processes", sh.Process.Pid, escapee)
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s created by the parent not removed after the kill: %v", d, err)
		}
	}
	if _, err := os.Stat(base); err != nil {
		t.Errorf("%s, which has other children, is gone: %v", base, err)
	}

	// A registered cgroup removed and made again by someone else.
	sh2, _ := shell(t, "echo; exec sleep 1000")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := moveToCgroup(dir, sh2.Process.Pid); err != nil {
		t.Fatal(err)
	}
	tab = testTable()
	if r := tab.apply(fmt.Appendf(nil, "+c 1 %q", dir)); r != replyAccepted {
		t.Fatalf("refused: %q", r)
	}
	if err := moveToCgroup(other, sh2.Process.Pid); err != nil {
		t.Fatal(err)
	}
	removeCgroup(t, dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stranger := exec.Command("sleep", "1000")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stranger.Process.Kill()
		stranger.Wait()
	})
	if err := moveToCgroup(dir, stranger.Process.Pid); err != nil {
		t.Fatal(err)
	}
	tab.kill()
	tab.close()
	if isDead(stranger.Process.Pid) {
		t.Error("the kill reached a process in a cgroup made again under a registered path")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the cgroup made again was removed: %v", err)
	}
}

// TestKillCgroup runs both ways of emptying a cgroup: cgroup.kill, and the
// freeze and cgroup.procs loop for kernels without it.
func TestKillCgroup(t *testing.T) {
	for _, byKillFile := range []bool{true, false} {
		t.Run(fmt.Sprintf("cgroup.kill=%v", byKillFile), func(t *testing.T) {
			dir := testCgroup(t)
			var pids []int
			for range 3 {
				sh, p := shell(t, "setsid sleep 1000 & echo $!; wait")
				pids = append(pids, sh.Process.Pid, p[0])
				for _, pid := range []int{sh.Process.Pid, p[0]} {
					if err := moveToCgroup(dir, pid); err != nil {
						t.Skipf("cannot move a process into a cgroup: %v", err)
					}
				}
			}
			fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			if !killCgroup(fd, 5*time.Second, byKillFile) {
				t.Error("killCgroup reports the cgroup is not empty")
			}
			waitDead(t, time.Second, "the cgroup's processes", pids...)
		})
	}
}

// TestLaunchable: an ordinary program can be its own watchdog; the build
// modes that load it into another program are refused, by name.
func TestLaunchable(t *testing.T) {
	if err := launchable(); err != nil {
		t.Errorf("launchable() in the test binary: %v", err)
	}
	for _, mode := range []string{"exe", "pie", "c-shared", "c-archive", "plugin"} {
		err := buildModeErr([]debug.BuildSetting{{Key: "CGO_ENABLED", Value: "1"}, {Key: "-buildmode", Value: mode}})
		refused := mode != "exe" && mode != "pie"
		if (err != nil) != refused || (refused && !strings.Contains(err.Error(), "-buildmode="+mode)) {
			t.Errorf("-buildmode=%s: %v", mode, err)
		}
	}
}

// TestTableCgroupNeedsParentsCredentials: a parent that gave up the
// credentials it started the watchdog with (here: a root program now
// running as nobody) cannot have the watchdog kill a cgroup for it.
func TestTableCgroupNeedsParentsCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("no setpriv: %v", err)
	}
	dir := testCgroup(t)
	nobody := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "1000")
	if err := nobody.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nobody.Process.Kill()
		nobody.Wait()
	})
	// setpriv drops its ids and then execs sleep; wait until it has.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", nobody.Process.Pid))
		if err == nil && strings.TrimSpace(string(b)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("setpriv did not exec sleep: comm %q, %v", b, err)
		}
	}
	tab := newTable(nobody.Process.Pid)
	tab.parentIs = func() bool { return true }
	t.Cleanup(tab.close)
	if r := tab.apply(fmt.Appendf(nil, "+c 0 %q", dir)); r != replyRefused {
		t.Errorf("a cgroup registered by a parent running as nobody: %q, want refused", r)
	}
	tab = testTable()
	t.Cleanup(tab.close)
	if r := tab.apply(fmt.Appendf(nil, "+c 0 %q", dir)); r != replyAccepted {
		t.Errorf("the same cgroup registered by a parent with the watchdog's credentials: %q, want accepted", r)
	}
}
