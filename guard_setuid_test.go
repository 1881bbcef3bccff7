//go:build linux

package netrunner

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	testHelpers["own-main"] = func() {
		fmt.Printf("own main uid=%d euid=%d\n", os.Getuid(), os.Geteuid())
	}
}

// TestGuardSetuidRunsOwnMain: a setuid-root program that imports the
// package, run by nobody with everything a real guard gets (the environment
// switch, a pipe on fd 3 naming a root-owned process group, then EOF), runs
// its own main and kills nothing. The control run, the same binary and input
// without setuid, shows that the input would make a guard kill the group.
func TestGuardSetuidRunsOwnMain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a setuid-root binary")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("needs the user nobody")
	}
	prog := setuidCopy(t)

	t.Run("setuid", func(t *testing.T) {
		out, victim := runAsGuard(t, setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", prog)
		if want := "own main uid=65534 euid=0\n"; out != want {
			t.Errorf("setuid copy run by nobody printed %q, want %q", out, want)
		}
		if isDead(victim) {
			t.Errorf("victim group %d was killed", victim)
		}
	})
	t.Run("control", func(t *testing.T) {
		out, victim := runAsGuard(t, prog)
		if out != "" {
			t.Errorf("the copy run by root printed %q, want nothing (a guard's stdout)", out)
		}
		if !eventually(5*time.Second, func() bool { return isDead(victim) }) {
			t.Errorf("the control run left victim group %d alive: the test does not feed what a guard gets", victim)
		}
	})
}

// setuidCopy copies the test binary, owned by root and setuid, into a
// directory on a filesystem that honours setuid (not mounted nosuid), which
// others may enter but not list.
func setuidCopy(t *testing.T) string {
	t.Helper()
	var dir string
	for _, base := range []string{os.TempDir(), "."} {
		var fs unix.Statfs_t
		if unix.Statfs(base, &fs) == nil && fs.Flags&unix.ST_NOSUID == 0 {
			d, err := os.MkdirTemp(base, "netrunner-setuid-")
			if err == nil {
				dir = d
				break
			}
		}
	}
	if dir == "" {
		t.Skip("no writable filesystem without nosuid")
	}
	abs, _ := filepath.Abs(dir)
	t.Cleanup(func() { os.RemoveAll(abs) })
	if err := os.Chmod(abs, 0o711); err != nil {
		t.Fatal(err)
	}
	self, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	prog := filepath.Join(abs, "prog")
	f, err := os.OpenFile(prog, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(f, self)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chown(prog, 0, 0)
	}
	if err == nil {
		err = os.Chmod(prog, 0o4711|os.ModeSetuid) // after chown, which clears setuid
	}
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// runAsGuard starts a root-owned victim in a process group of its own, runs
// argv with what a guard is started with (the environment switch and "+g
// VICTIM" on a pipe at fd 3, then EOF), and returns what it printed and the
// victim's pid once it has exited.
func runAsGuard(t *testing.T, argv ...string) (string, int) {
	t.Helper()
	victim := exec.Command("sleep", "1000")
	victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		victim.Process.Kill()
		victim.Wait()
	})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NETRUNNER_GUARD=1", "NETRUNNER_TEST_HELPER=own-main")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	cmd.ExtraFiles = []*os.File{pr}
	err = cmd.Start()
	pr.Close()
	if err != nil {
		pw.Close()
		t.Fatal(err)
	}
	fmt.Fprintf(pw, "+g %d\n", victim.Process.Pid)
	pw.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("%v: %v", argv, err)
	}
	return out.String(), victim.Process.Pid
}

