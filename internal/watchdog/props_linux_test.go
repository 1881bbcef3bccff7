//go:build linux

package watchdog

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// pipeFds lists pid's descriptors open on the pipe inode link (such as
// "pipe:[123]"), with their fdinfo flags.
func pipeFds(t *testing.T, pid int, link string) map[string]int64 {
	t.Helper()
	d := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		if l, _ := os.Readlink(d + "/" + e.Name()); l == link {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					out[e.Name()], _ = strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				}
			}
		}
	}
	return out
}

// TestWatchdogProcess checks the test process's own watchdog: its name,
// session, stdio, signal dispositions and working directory, and that the
// only descriptors on its pipes are its ends and the program's CLOEXEC ends.
func TestWatchdogProcess(t *testing.T) {
	Ensure()
	if err := Err(); err != nil {
		t.Fatal(err)
	}
	pid := Pid()
	if pid == 0 {
		t.Fatal("Pid() = 0 after Ensure")
	}
	f, err := statFields(pid)
	if err != nil {
		t.Fatal(err)
	}
	if c := comm(pid); c != Name || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) || f[2] != strconv.Itoa(pid) || f[3] != strconv.Itoa(pid) {
		t.Errorf("watchdog %q: state %s ppid %s pgrp %s session %s; want %q, alive, our child, own group and session",
			c, f[0], f[1], f[2], f[3], Name)
	}
	for _, fd := range []string{"0", "1", "2"} {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd)); l != os.DevNull {
			t.Errorf("watchdog fd %s -> %q, want /dev/null", fd, l)
		}
	}
	for _, end := range []struct {
		fd           string
		theirs, ours int64
	}{{"3", syscall.O_RDONLY, syscall.O_WRONLY}, {"4", syscall.O_WRONLY, syscall.O_RDONLY}} {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, end.fd))
		if !strings.HasPrefix(link, "pipe:") {
			t.Fatalf("watchdog fd %s -> %q, want a pipe", end.fd, link)
		}
		if got := pipeFds(t, pid, link); len(got) != 1 || got[end.fd]&syscall.O_ACCMODE != end.theirs {
			t.Errorf("watchdog's descriptors on the pipe of its fd %s: %v (fd: octal flags), want only %s", end.fd, got, end.fd)
		}
		mine := pipeFds(t, os.Getpid(), link)
		if len(mine) != 1 {
			t.Errorf("test process's descriptors on the pipe of the watchdog's fd %s: %v, want one", end.fd, mine)
		}
		for _, flags := range mine {
			if flags&syscall.O_ACCMODE != end.ours || flags&syscall.O_CLOEXEC == 0 {
				t.Errorf("our end of the pipe of the watchdog's fd %s: flags %o, want O_CLOEXEC", end.fd, flags)
			}
		}
		c := exec.Command("sleep", "1000")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		got := pipeFds(t, c.Process.Pid, link)
		c.Process.Kill()
		c.Wait()
		if len(got) != 0 {
			t.Errorf("a child inherited a watchdog pipe: %v", got)
		}
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
	signals := []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGPIPE}
	for _, sig := range signals {
		if ign&(1<<(sig-1)) == 0 {
			t.Errorf("watchdog does not ignore %v (SigIgn %x)", sig, ign)
		}
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
		t.Errorf("watchdog cwd %q, want /", cwd)
	}
	if _, ok := os.LookupEnv(envVar); ok {
		t.Errorf("%s is in the program's environment", envVar)
	}
	// Signals aimed at it do nothing; it still answers afterwards.
	for _, sig := range signals {
		syscall.Kill(pid, sig)
	}
	leader := startLeader(t, "sleep", "1000").Process.Pid
	WatchGroup(leader)
	err = Err()
	ForgetGroup(leader)
	if err != nil || isDead(pid) || Pid() != pid {
		t.Fatalf("after signals: Err %v, watchdog %d dead %v, Pid %d", err, pid, isDead(pid), Pid())
	}
}

// BenchmarkWatchForget: what each child's registration costs, a round trip
// to the watchdog and a forget.
func BenchmarkWatchForget(b *testing.B) {
	Ensure()
	c := exec.Command("sleep", "1000")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		c.Process.Kill()
		c.Wait()
	}()
	b.ReportAllocs()
	for b.Loop() {
		WatchGroup(c.Process.Pid)
		ForgetGroup(c.Process.Pid)
	}
	if err := Err(); err != nil {
		b.Fatal(err)
	}
}
