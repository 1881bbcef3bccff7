//go:build linux

package watchdog

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakePgid is far above any pid_max (at most 2^22): a group that tests
// register only to exercise the pipe, which nothing could ever kill.
const fakePgid = 1 << 30

// helperFail ends a helper process with an error.
func helperFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "watchdog helper: "+format+"\n", args...)
	os.Exit(1)
}

// helper is a running helper process (the test binary re-executed).
type helper struct {
	cmd    *exec.Cmd
	out    *os.File
	r      *bufio.Reader
	waited bool
}

func startHelper(t *testing.T, name string, env ...string) *helper {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{"NETRUNNER_TEST_HELPER=" + name}, env...)...)
	// Under -race, a program sleeps 1s at exit by default; the helpers and
	// their watchdogs need not.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Stdout, cmd.Stderr = pw, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, out: pr, r: bufio.NewReader(pr)}
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
func (h *helper) line(t *testing.T) string {
	t.Helper()
	h.out.SetReadDeadline(time.Now().Add(20 * time.Second))
	s, err := h.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's stdout: %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

// finish reads the helper's stdout to its end (no one, its watchdog least
// of all, may hold it open) and reaps it.
func (h *helper) finish(t *testing.T) error {
	t.Helper()
	h.out.SetReadDeadline(time.Now().Add(20 * time.Second))
	if rest, err := io.ReadAll(h.r); err != nil {
		t.Fatalf("the helper's stdout did not reach EOF (%v; read %q): someone still holds it", err, rest)
	}
	h.waited = true
	return h.cmd.Wait()
}

// statFields returns the fields of /proc/PID/stat after the comm: [0] is
// the state, [1] ppid, [2] pgrp, [3] session.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 4 {
		return nil, fmt.Errorf("bad /proc/%d/stat: %q", pid, b)
	}
	return f, nil
}

// isDead reports whether pid is gone or a zombie (here PID 1 does not reap
// orphans, so killed grandchildren stay zombies).
func isDead(pid int) bool {
	f, err := statFields(pid)
	return err != nil || f[0] == "Z" || f[0] == "X"
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// waitDead polls until all pids are dead, failing after timeout.
func waitDead(t *testing.T, timeout time.Duration, what string, pids ...int) {
	t.Helper()
	start := time.Now()
	for {
		var alive []int
		for _, pid := range pids {
			if !isDead(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			t.Logf("%s %v dead after %v", what, pids, time.Since(start).Round(time.Microsecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s %v still alive after %v", what, alive, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// startLeader starts argv as a child of the test process, leading a process
// group of its own; the test's end kills and reaps it.
func startLeader(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Kill()
		c.Wait()
	})
	return c
}

// testCgroup makes a fresh cgroup below the mount (the test process's own
// cgroup may hold processes, so it can have no children with processes)
// and removes it at the end; it skips where cgroup v2 is not writable.
func testCgroup(t *testing.T) string {
	t.Helper()
	mount, err := Cgroup2Mount()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	dir := fmt.Sprintf("%s/netrunner-watchdog-test-%d-%d", mount, os.Getpid(), time.Now().UnixNano())
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cgroup v2 not writable: %v", err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	return dir
}

// removeCgroup empties and removes dir if it exists.
func removeCgroup(t *testing.T, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("rmdir %s: %v", dir, err)
			return
		}
		os.WriteFile(dir+"/cgroup.kill", []byte("1"), 0)
		time.Sleep(5 * time.Millisecond)
	}
}

func moveToCgroup(dir string, pid int) error {
	return os.WriteFile(dir+"/cgroup.procs", []byte(strconv.Itoa(pid)), 0)
}
