//go:build linux

package netrunner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// guardTestFakePgid is the first of the process groups that tests watch and
// forget only to exercise the pipe: far above any pid_max (at most 2^22), so
// that even a guard that kills them by mistake hits nothing.
const guardTestFakePgid = 1 << 30

func init() {
	testHelpers["guard-parent"] = guardHelperParent
	testHelpers["guard-cgroup-parent"] = guardHelperCgroupParent
	testHelpers["guard-dead-guard"] = guardHelperDeadGuard
	testHelpers["guard-startup"] = guardHelperStartup
	testHelpers["guard-stuck"] = guardHelperStuckGuard
}

// guardHelperFail ends a helper process with an error.
func guardHelperFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "guard helper: "+format+"\n", args...)
	os.Exit(1)
}

// guardHelperBlock blocks the helper forever (until the test kills it).
func guardHelperBlock() {
	for {
		time.Sleep(time.Hour)
	}
}

// guardChurn watches and forgets fake groups and cgroups from many goroutines
// at once.
func guardChurn(goroutines, each int) {
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				pgid := guardTestFakePgid + g*each + i
				guardWatch(pgid)
				if i%16 == 0 {
					dir := fmt.Sprintf("/nonexistent/netrunner-guard-test/%d/%d", g, i)
					guardWatchCgroup(dir)
					guardForgetCgroup(dir)
				}
				guardForget(pgid)
			}
		})
	}
	wg.Wait()
}

// guardHelperParent plays a program that started a process group (sh and
// its background sleep), registered it with the guard, and then hangs. It
// first churns the pipe from many goroutines, so that the kill afterwards also
// shows the guard parsed all of that correctly.
func guardHelperParent() {
	guardChurn(16, 200)
	cmd := exec.Command("sh", "-c", "sleep 1000 & echo $!; echo $$; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		guardHelperFail("%v", err)
	}
	if err := cmd.Start(); err != nil {
		guardHelperFail("%v", err)
	}
	guardWatch(cmd.Process.Pid)
	r := bufio.NewReader(out)
	sleepLine, err1 := r.ReadString('\n')
	shLine, err2 := r.ReadString('\n')
	if err := errors.Join(err1, err2); err != nil {
		guardHelperFail("reading pids from sh: %v", err)
	}
	if sh := strings.TrimSpace(shLine); sh != strconv.Itoa(cmd.Process.Pid) {
		guardHelperFail("sh says its pid is %s, Start says %d", sh, cmd.Process.Pid)
	}
	if err := guardErr(); err != nil {
		guardHelperFail("%v", err)
	}
	fmt.Printf("ready %s %s %d\n", strings.TrimSpace(sleepLine), strings.TrimSpace(shLine), guardPid())
	guardHelperBlock()
}

// guardHelperCgroupParent plays a program that started a sleep in a group of
// its own (not registered) and moved it into the cgroup named by
// NETRUNNER_GUARD_TEST_CGROUP, which it registered.
func guardHelperCgroupParent() {
	dir := os.Getenv("NETRUNNER_GUARD_TEST_CGROUP")
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		guardHelperFail("%v", err)
	}
	pid := cmd.Process.Pid
	if err := guardMoveToCgroup(dir, pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		fmt.Printf("nomove %v\n", err)
		os.Exit(0)
	}
	guardWatchCgroup(dir)
	if err := guardErr(); err != nil {
		guardHelperFail("%v", err)
	}
	fmt.Printf("ready %d %d\n", pid, guardPid())
	guardHelperBlock()
}

// guardHelperDeadGuard kills its own guard and then keeps calling the API:
// nothing must crash (SIGPIPE), hang or spin, guardErr must say EPIPE, and the
// guard's zombie must be reaped.
func guardHelperDeadGuard() {
	guardWatch(guardTestFakePgid)
	pid := guardPid()
	if pid == 0 {
		guardHelperFail("no guard: %v", guardErr())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		guardHelperFail("kill guard: %v", err)
	}
	// Wait until it is a zombie: only then is its end of the pipe surely closed.
	deadline := time.Now().Add(10 * time.Second)
	for !guardTestDead(pid) {
		if time.Now().After(deadline) {
			guardHelperFail("guard %d still alive 10s after SIGKILL", pid)
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for i := range 1000 {
		guardWatch(guardTestFakePgid + i)
		guardWatchCgroup("/nonexistent/x")
		guardForgetCgroup("/nonexistent/x")
		guardForget(guardTestFakePgid + i)
	}
	took := time.Since(start)
	err := guardErr()
	if !errors.Is(err, syscall.EPIPE) {
		guardHelperFail("guardErr after the guard died: %v, want EPIPE", err)
	}
	if p := guardPid(); p != 0 {
		guardHelperFail("guardPid = %d after the guard died and was reaped, want 0", p)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		guardHelperFail("guard %d not reaped", pid)
	}
	fmt.Printf("ok %v %v\n", took, err)
}

// guardHelperStuckGuard stops its own guard and then keeps calling the API:
// once the pipe is full, a call waits guardWriteTimeout and then gives the
// guard up (kills and reaps it) instead of hanging the program.
func guardHelperStuckGuard() {
	guardWriteTimeout = 200 * time.Millisecond
	guardWatch(guardTestFakePgid)
	pid := guardPid()
	if pid == 0 {
		guardHelperFail("no guard: %v", guardErr())
	}
	for guardTestComm(pid) != guardName {
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		guardHelperFail("stop guard: %v", err)
	}
	start := time.Now()
	calls := 0
	for guardErr() == nil {
		if time.Since(start) > 20*time.Second {
			guardHelperFail("still no error after %d calls in 20s", calls)
		}
		guardWatch(guardTestFakePgid + calls)
		guardForget(guardTestFakePgid + calls)
		calls++
	}
	took := time.Since(start)
	if !strings.Contains(guardErr().Error(), "unresponsive") {
		guardHelperFail("guardErr = %v", guardErr())
	}
	// Later calls are no-ops, which also reap the killed guard once it is a
	// zombie (it has to be scheduled to die first).
	for i := 0; guardPid() != 0; i++ {
		if time.Since(start) > 20*time.Second {
			guardHelperFail("stuck guard %d not reaped", guardPid())
		}
		guardWatch(guardTestFakePgid + i)
		guardForget(guardTestFakePgid + i)
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("ok %d calls, %v: %v\n", calls, took, guardErr())
}

// guardHelperStartup measures how long the first guardWatch takes and when the
// guard is ready (it names itself right before it starts reading).
func guardHelperStartup() {
	start := time.Now()
	guardWatch(guardTestFakePgid)
	call := time.Since(start)
	pid := guardPid()
	if pid == 0 {
		guardHelperFail("no guard: %v", guardErr())
	}
	for guardTestComm(pid) != guardName {
		if time.Since(start) > 10*time.Second {
			guardHelperFail("guard not ready after 10s")
		}
		time.Sleep(50 * time.Microsecond)
	}
	ready := time.Since(start)
	guardForget(guardTestFakePgid)
	fmt.Printf("startup %d %d\n", call.Nanoseconds(), ready.Nanoseconds())
}

// guardHelper is a running helper process (the test binary re-executed).
type guardHelper struct {
	cmd    *exec.Cmd
	out    *os.File
	r      *bufio.Reader
	waited bool
}

func guardStartHelper(t *testing.T, name string, env ...string) *guardHelper {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{"NETRUNNER_TEST_HELPER=" + name}, env...)...)
	// Under -race, a program sleeps 1s at exit by default; the helpers and
	// their guards need not.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Stdout = pw
	cmd.Stderr = os.Stderr
	// Should the test process die, so does the helper (and then its guard
	// does its job).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	h := &guardHelper{cmd: cmd, out: pr, r: bufio.NewReader(pr)}
	t.Cleanup(func() {
		if !h.waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		pr.Close()
	})
	return h
}

// line reads one line of the helper's stdout, failing after 20 s.
func (h *guardHelper) line(t *testing.T) string {
	t.Helper()
	h.out.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := h.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's stdout: %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

// pids reads a line "word pid pid ..." with n pids.
func (h *guardHelper) pids(t *testing.T, word string, n int) []int {
	t.Helper()
	s := h.line(t)
	f := strings.Fields(s)
	if len(f) != n+1 || f[0] != word {
		t.Fatalf("helper said %q, want %q and %d pids", s, word, n)
	}
	var pids []int
	for _, x := range f[1:] {
		pid, err := strconv.Atoi(x)
		if err != nil || pid <= 1 {
			t.Fatalf("helper said %q: %q is no pid", s, x)
		}
		pids = append(pids, pid)
	}
	return pids
}

// expectEOF reads the helper's stdout to its end: after the helper died, no
// one (its guard least of all) may hold it open.
func (h *guardHelper) expectEOF(t *testing.T) {
	t.Helper()
	h.out.SetReadDeadline(time.Now().Add(20 * time.Second))
	rest, err := io.ReadAll(h.r)
	if err != nil {
		t.Fatalf("the helper's stdout did not reach EOF after it died (%v; read %q): someone still holds it", err, rest)
	}
}

// checkGuardStdio checks that the helper's guard holds neither the helper's
// stdout nor its stderr (the test's), which would keep readers of them waiting.
func (h *guardHelper) checkGuardStdio(t *testing.T, gpid int) {
	t.Helper()
	rc, err := h.out.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var stdout string
	rc.Control(func(fd uintptr) { stdout, _ = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)) })
	stderr, _ := os.Readlink("/proc/self/fd/2")
	d := fmt.Sprintf("/proc/%d/fd", gpid)
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		l, _ := os.Readlink(d + "/" + e.Name())
		if l == stdout || (l == stderr && l != os.DevNull) {
			t.Errorf("guard %d holds the helper's stdout or stderr: fd %s -> %s", gpid, e.Name(), l)
		}
	}
}

// kill SIGKILLs the helper.
func (h *guardHelper) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// wait reaps the helper and returns how it ended.
func (h *guardHelper) wait(t *testing.T) error {
	t.Helper()
	h.waited = true
	return h.cmd.Wait()
}

// guardTestStat returns the fields of /proc/PID/stat after the comm: [0] is
// the state, [1] ppid, [2] pgrp, [3] session.
func guardTestStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("bad /proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return nil, fmt.Errorf("bad /proc/%d/stat: %q", pid, b)
	}
	return f, nil
}

// guardTestDead reports whether pid is gone or a zombie (here PID 1 does not
// reap orphans, so killed grandchildren stay zombies).
func guardTestDead(pid int) bool {
	f, err := guardTestStat(pid)
	return err != nil || f[0] == "Z" || f[0] == "X"
}

func guardTestComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// guardTestWaitDead polls until all pids are dead, failing after timeout.
func guardTestWaitDead(t *testing.T, timeout time.Duration, what string, pids ...int) {
	t.Helper()
	start := time.Now()
	for {
		var alive []int
		for _, pid := range pids {
			if !guardTestDead(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			t.Logf("%s %v dead %v after the kill", what, pids, time.Since(start).Round(time.Microsecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s %v still alive %v after the kill", what, alive, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// guardTestWaitReady waits until the guard pid has named itself.
func guardTestWaitReady(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for guardTestComm(pid) != guardName {
		if time.Now().After(deadline) {
			t.Fatalf("guard %d not ready after 10s (comm %q)", pid, guardTestComm(pid))
		}
		time.Sleep(time.Millisecond)
	}
}

// guardTestKillLater makes sure pids are dead when the test ends.
func guardTestKillLater(t *testing.T, pids ...int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			if !guardTestDead(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

func TestGuardKillsGroupWhenParentDies(t *testing.T) {
	h := guardStartHelper(t, "guard-parent")
	p := h.pids(t, "ready", 3)
	sleepPid, shPid, gpid := p[0], p[1], p[2]
	guardTestKillLater(t, sleepPid, shPid, gpid)
	for _, pid := range []int{sleepPid, shPid, gpid} {
		if guardTestDead(pid) {
			t.Fatalf("pid %d dead before the parent was killed", pid)
		}
	}
	if f, _ := guardTestStat(sleepPid); f == nil || f[2] != strconv.Itoa(shPid) {
		t.Fatalf("sleep %d is not in sh's group %d: %v", sleepPid, shPid, f)
	}
	guardTestWaitReady(t, gpid)
	h.checkGuardStdio(t, gpid)

	h.kill(t)
	guardTestWaitDead(t, time.Second, "sh and its background sleep", sleepPid, shPid)
	guardTestWaitDead(t, 5*time.Second, "the guard", gpid)
	h.expectEOF(t)
	if err := h.wait(t); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("helper ended with %v, want killed", err)
	}
}

// guardTestCgroup creates a fresh cgroup below the test process's own cgroup
// and removes it when the test ends; it skips the test where cgroup v2 is not
// mounted or not writable.
func guardTestCgroup(t *testing.T) string {
	t.Helper()
	mnt := cgTestMount(t)
	own := "/"
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				own = p
			}
		}
	}
	base := filepath.Join(mnt, own)
	if strings.HasSuffix(own, " (deleted)") || !guardCgroupDirOK(base) {
		base = mnt
	}
	dir := filepath.Join(base, fmt.Sprintf("netrunner-guard-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("rmdir %s: %v", dir, err)
				return
			}
			os.WriteFile(dir+"/cgroup.kill", []byte("1"), 0)
			time.Sleep(5 * time.Millisecond)
		}
	})
	return dir
}

func guardCgroupDirOK(dir string) bool {
	_, err := os.Stat(dir + "/cgroup.procs")
	return err == nil
}

func guardMoveToCgroup(dir string, pid int) error {
	f, err := os.OpenFile(dir+"/cgroup.procs", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(strconv.Itoa(pid))
	return err
}

func guardCgroupHas(t *testing.T, dir string, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(dir + "/cgroup.procs")
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(strings.Fields(string(b)), strconv.Itoa(pid))
}

func TestGuardKillsCgroupWhenParentDies(t *testing.T) {
	dir := guardTestCgroup(t)
	h := guardStartHelper(t, "guard-cgroup-parent", "NETRUNNER_GUARD_TEST_CGROUP="+dir)
	s := h.line(t)
	if msg, ok := strings.CutPrefix(s, "nomove "); ok {
		h.wait(t)
		t.Skipf("cannot move a process into a cgroup: %s", msg)
	}
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "ready" {
		t.Fatalf("helper said %q", s)
	}
	sleepPid, _ := strconv.Atoi(f[1])
	gpid, _ := strconv.Atoi(f[2])
	if sleepPid <= 1 || gpid <= 1 {
		t.Fatalf("helper said %q", s)
	}
	guardTestKillLater(t, sleepPid, gpid)
	if !guardCgroupHas(t, dir, sleepPid) {
		t.Fatalf("sleep %d is not in %s", sleepPid, dir)
	}
	guardTestWaitReady(t, gpid)
	h.checkGuardStdio(t, gpid)

	h.kill(t)
	guardTestWaitDead(t, time.Second, "the sleep in the cgroup", sleepPid)
	guardTestWaitDead(t, 5*time.Second, "the guard", gpid)
	h.expectEOF(t)
	h.wait(t)
}

// TestGuardCgroupKill runs the guard's two ways of emptying a cgroup in the
// test process: cgroup.kill, and the cgroup.procs loop for kernels without it.
func TestGuardCgroupKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(dir string)
	}{
		{"cgroup.kill", func(dir string) {
			if !guardCgroupKill(dir) {
				t.Errorf("guardCgroupKill(%s) failed", dir)
			}
		}},
		{"cgroup.procs", func(dir string) { guardKillCgroupProcs([]string{dir}, 2*time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := guardTestCgroup(t)
			if !guardCgroupKillable(dir) {
				t.Fatalf("guardCgroupKillable(%s) = false", dir)
			}
			var cmds []*exec.Cmd
			t.Cleanup(func() {
				for _, c := range cmds {
					c.Process.Kill()
					c.Wait()
				}
			})
			for range 3 {
				c := exec.Command("sleep", "1000")
				c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, c)
				if err := guardMoveToCgroup(dir, c.Process.Pid); err != nil {
					t.Skipf("cannot move a process into a cgroup: %v", err)
				}
			}
			tc.kill(dir)
			var pids []int
			for _, c := range cmds {
				pids = append(pids, c.Process.Pid)
			}
			guardTestWaitDead(t, 2*time.Second, "the cgroup's processes", pids...)
			for _, c := range cmds {
				err := c.Wait()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Errorf("pid %d ended with %v, want SIGKILL", c.Process.Pid, err)
				}
			}
			cmds = nil
		})
	}
}

// TestGuardCgroupKillable: the guard never kills a cgroup mount's root (the
// system's root cgroup, a container's namespace root) nor anything that is no
// cgroup2 directory.
func TestGuardCgroupKillable(t *testing.T) {
	for _, dir := range []string{"/", "/tmp", "/proc", "/nonexistent/cgroup"} {
		if guardCgroupKillable(dir) {
			t.Errorf("guardCgroupKillable(%q) = true", dir)
		}
	}
	mnt := cgTestMount(t)
	if guardCgroupKillable(mnt) {
		t.Errorf("guardCgroupKillable(%q), the cgroup2 mount root, = true", mnt)
	}
}

func TestGuardTableApply(t *testing.T) {
	tab := guardTable{groups: map[int]int{}, cgroups: map[string]int{}}
	for _, line := range []string{
		"+g 1234", "+g 1234", "-g 1234", "+g 99", "-g 99", "-g 99", // counted; extra forget harmless
		"+g 1", "+g 0", "+g -7", "+g x", "+g", "+g  5", "*g 5", "+x 5", "", "+g 12a",
		`+c "/sys/fs/cgroup/a"`, `+c "/sys/fs/cgroup/b/../c"`, `+c "rel"`, `+c /unquoted`,
		`+c "/sys/fs/cgroup/new\nline"`, `-c "/sys/fs/cgroup/a"`,
	} {
		tab.apply([]byte(line))
	}
	if want := map[int]int{1234: 1}; !guardEqualMaps(tab.groups, want) {
		t.Errorf("groups %v, want %v", tab.groups, want)
	}
	if want := map[string]int{"/sys/fs/cgroup/c": 1, "/sys/fs/cgroup/new\nline": 1}; !guardEqualMaps(tab.cgroups, want) {
		t.Errorf("cgroups %v, want %v", tab.cgroups, want)
	}
}

// TestGuardTableFeed: lines split across reads anywhere are put together.
func TestGuardTableFeed(t *testing.T) {
	var stream []byte
	want := guardTable{groups: map[int]int{}, cgroups: map[string]int{}}
	for i := range 300 {
		pgid := 1000 + i
		stream = fmt.Appendf(stream, "+g %d\n", pgid)
		want.groups[pgid] = 1
		if i%3 == 0 {
			stream = fmt.Appendf(stream, "-g %d\n", pgid)
			delete(want.groups, pgid)
		}
		if i%7 == 0 {
			dir := fmt.Sprintf("/sys/fs/cgroup/x%d", i)
			stream = fmt.Appendf(stream, "+c %q\n", dir)
			want.cgroups[dir] = 1
		}
	}
	for _, chunk := range []int{1, 2, 3, 5, 13, 100, 4096, len(stream)} {
		got := guardTable{groups: map[int]int{}, cgroups: map[string]int{}}
		var pending []byte
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			pending = got.feed(pending, rest[:n])
			rest = rest[n:]
		}
		if len(pending) != 0 || !guardEqualMaps(got.groups, want.groups) || !guardEqualMaps(got.cgroups, want.cgroups) {
			t.Errorf("chunks of %d: pending %q, %d groups, %d cgroups; want none, %d, %d",
				chunk, pending, len(got.groups), len(got.cgroups), len(want.groups), len(want.cgroups))
		}
	}
}

func guardEqualMaps[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// guardTestPipeFds lists pid's descriptors open on the pipe inode link (such
// as "pipe:[123]"), with their fdinfo flags.
func guardTestPipeFds(t *testing.T, pid int, link string) map[string]int64 {
	t.Helper()
	d := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		if l, _ := os.Readlink(d + "/" + e.Name()); l == link {
			out[e.Name()] = guardTestFdFlags(t, pid, e.Name())
		}
	}
	return out
}

func guardTestFdFlags(t *testing.T, pid int, fd string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			return n
		}
	}
	t.Fatalf("no flags in fdinfo of %d/%s: %q", pid, fd, b)
	return 0
}

// TestGuardProcess checks the test process's own guard: its session, stdio,
// signal dispositions and working directory, and that the only descriptors on
// the control pipe are its read end and the program's CLOEXEC write end.
func TestGuardProcess(t *testing.T) {
	guardWatch(guardTestFakePgid)
	guardForget(guardTestFakePgid)
	if err := guardErr(); err != nil {
		t.Fatal(err)
	}
	pid := guardPid()
	if pid == 0 {
		t.Fatal("guardPid() = 0 after guardWatch")
	}
	guardTestWaitReady(t, pid)

	f, err := guardTestStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) || f[2] != strconv.Itoa(pid) || f[3] != strconv.Itoa(pid) {
		t.Errorf("guard stat: state %s ppid %s pgrp %s session %s; want alive, child of %d, own group and session",
			f[0], f[1], f[2], f[3], os.Getpid())
	}
	for _, fd := range []string{"0", "1", "2"} {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd)); l != os.DevNull {
			t.Errorf("guard fd %s -> %q, want /dev/null", fd, l)
		}
	}
	link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
	if !strings.HasPrefix(link, "pipe:") {
		t.Fatalf("guard fd 3 -> %q, want a pipe", link)
	}
	if got := guardTestPipeFds(t, pid, link); len(got) != 1 || got["3"]&syscall.O_ACCMODE != syscall.O_RDONLY {
		t.Errorf("guard's descriptors on its control pipe: %v (fd: octal flags), want only 3, read-only", got)
	}
	mine := guardTestPipeFds(t, os.Getpid(), link)
	if len(mine) != 1 {
		t.Errorf("test process's descriptors on the control pipe: %v, want one", mine)
	}
	for _, flags := range mine {
		if flags&syscall.O_ACCMODE != syscall.O_WRONLY || flags&syscall.O_CLOEXEC == 0 {
			t.Errorf("write end flags %o, want O_WRONLY|O_CLOEXEC", flags)
		}
	}
	// A child must not inherit it.
	c := exec.Command("sleep", "1000")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	got := guardTestPipeFds(t, c.Process.Pid, link)
	c.Process.Kill()
	c.Wait()
	if len(got) != 0 {
		t.Errorf("a child inherited the control pipe: %v", got)
	}

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ign uint64
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			ign, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE} {
		if ign&(1<<(sig-1)) == 0 {
			t.Errorf("guard does not ignore %v (SigIgn %x)", sig, ign)
		}
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("guard cwd %q, want /", cwd)
	}
	// Signals aimed at it do nothing; it still works afterwards.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE} {
		syscall.Kill(pid, sig)
	}
	guardWatch(guardTestFakePgid)
	guardForget(guardTestFakePgid)
	if err := guardErr(); err != nil {
		t.Fatal(err)
	}
	if guardTestDead(pid) || guardPid() != pid {
		t.Fatalf("guard %d died (guardPid %d)", pid, guardPid())
	}
}

// TestGuardConcurrent hammers the guard from many goroutines at once.
func TestGuardConcurrent(t *testing.T) {
	guardChurn(64, 500)
	if err := guardErr(); err != nil {
		t.Fatal(err)
	}
	pid := guardPid()
	if pid == 0 {
		t.Fatal("no guard")
	}
	guardTestWaitReady(t, pid)
	if guardTestDead(pid) {
		t.Fatalf("guard %d died", pid)
	}
}

// TestGuardDeadGuard: when the guard dies while the program lives, the
// program carries on (no SIGPIPE death, no spin) and guardErr says so.
func TestGuardDeadGuard(t *testing.T) {
	h := guardStartHelper(t, "guard-dead-guard")
	s := h.line(t)
	if !strings.HasPrefix(s, "ok ") {
		t.Fatalf("helper said %q", s)
	}
	t.Log(s)
	h.expectEOF(t)
	if err := h.wait(t); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestGuardStuckGuard: a guard that stops reading does not hang the program.
func TestGuardStuckGuard(t *testing.T) {
	h := guardStartHelper(t, "guard-stuck")
	s := h.line(t)
	if !strings.HasPrefix(s, "ok ") {
		t.Fatalf("helper said %q", s)
	}
	t.Log(s)
	h.expectEOF(t)
	if err := h.wait(t); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestGuardStartup measures the first guardWatch (fork and exec of the guard)
// and the time until the guard is ready, in fresh helper processes.
func TestGuardStartup(t *testing.T) {
	var calls, readies []time.Duration
	for range 5 {
		h := guardStartHelper(t, "guard-startup")
		s := h.line(t)
		var call, ready int64
		if _, err := fmt.Sscanf(s, "startup %d %d", &call, &ready); err != nil {
			t.Fatalf("helper said %q: %v", s, err)
		}
		calls = append(calls, time.Duration(call))
		readies = append(readies, time.Duration(ready))
		h.expectEOF(t)
		if err := h.wait(t); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(calls)
	slices.Sort(readies)
	t.Logf("first guardWatch: min %v median %v max %v", calls[0], calls[2], calls[4])
	t.Logf("guard ready after: min %v median %v max %v", readies[0], readies[2], readies[4])
}

func BenchmarkGuardWatchForget(b *testing.B) {
	guardWatch(guardTestFakePgid) // start the guard outside the timing
	guardForget(guardTestFakePgid)
	b.ReportAllocs()
	for b.Loop() {
		guardWatch(guardTestFakePgid + 1)
		guardForget(guardTestFakePgid + 1)
	}
	if err := guardErr(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGuardWatchForgetParallel(b *testing.B) {
	guardWatch(guardTestFakePgid)
	guardForget(guardTestFakePgid)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			guardWatch(guardTestFakePgid + 2)
			guardForget(guardTestFakePgid + 2)
		}
	})
	if err := guardErr(); err != nil {
		b.Fatal(err)
	}
}
