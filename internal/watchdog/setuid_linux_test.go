//go:build linux

package watchdog

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
	// ensure is a program that needs the watchdog before its first child.
	testHelpers["ensure"] = func() {
		fmt.Println("main")
		Ensure()
		fmt.Printf("err: %v\n", Err())
	}
}

// TestSetuidRunsOwnMain: a setuid-root program that imports the package,
// run by nobody with everything a real watchdog gets (the environment
// switch, a control pipe on fd 3 naming a root-owned process group, a reply
// pipe on fd 4, then EOF), runs its own main and kills nothing. The control
// run, the same binary and input without setuid, shows that this input makes
// a watchdog that kills the group.
func TestSetuidRunsOwnMain(t *testing.T) {
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
		out, replies, victim := runAsWatchdog(t, setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", prog)
		if want := "own main uid=65534 euid=0\n"; out != want {
			t.Errorf("setuid copy run by nobody printed %q, want %q", out, want)
		}
		if replies != "" {
			t.Errorf("setuid copy answered %q on fd 4, want nothing", replies)
		}
		if isDead(victim) {
			t.Errorf("victim group %d was killed", victim)
		}
	})
	// Run as an ordinary program, the setuid copy must not start a watchdog:
	// the copy would run main again, as root, and its first Start the same.
	t.Run("setuid-start", func(t *testing.T) {
		cmd := exec.Command(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", prog)
		cmd.Env = append(os.Environ(), "NETRUNNER_TEST_HELPER=ensure")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		done := make(chan struct{})
		time.AfterFunc(20*time.Second, func() {
			select {
			case <-done:
			default:
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
		})
		out, err := cmd.Output()
		close(done)
		if err != nil {
			t.Fatalf("setuid program: %v (output %q)", err, out)
		}
		if n := bytes.Count(out, []byte("main\n")); n != 1 {
			t.Errorf("main ran %d times, want once; output %q", n, out)
		}
		if !bytes.Contains(out, []byte("err: no watchdog in secure-execution mode")) {
			t.Errorf("Err after Ensure in a setuid program: output %q, want the secure-execution refusal", out)
		}
	})
	t.Run("control", func(t *testing.T) {
		out, replies, victim := runAsWatchdog(t, prog)
		if out != "" || replies != "Ry" {
			t.Errorf("the copy run by root printed %q and answered %q, want nothing and \"Ry\"", out, replies)
		}
		waitDead(t, 5*time.Second, "the control run's victim", victim)
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
			if d, err := os.MkdirTemp(base, "netrunner-setuid-"); err == nil {
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
		err = os.Chmod(prog, 0o711|os.ModeSetuid) // after chown, which clears setuid
	}
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// runAsWatchdog starts a root-owned victim leading a process group, a child
// of the test process like argv, runs argv with what a watchdog is started
// with ("+g VICTIM" on the control pipe, then EOF), and returns what it
// printed and answered, and the victim's pid, once it has exited.
func runAsWatchdog(t *testing.T, argv ...string) (out, replies string, victim int) {
	t.Helper()
	v := startLeader(t, "sleep", "1000")
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	replyR, replyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer replyR.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), envVar+"="+envValue, "NETRUNNER_TEST_HELPER=own-main")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{ctlR, replyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	ctlR.Close()
	replyW.Close()
	if err != nil {
		ctlW.Close()
		t.Fatal(err)
	}
	fmt.Fprintf(ctlW, "+g %d\n", v.Process.Pid)
	ctlW.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("%v: %v", argv, err)
	}
	b, _ := io.ReadAll(replyR)
	return stdout.String(), string(b), v.Process.Pid
}
