package netrunner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	testHelpers["tty-stdin"] = helperTTYStdin
	testHelpers["tty-background"] = helperTTYBackground
}

// helperTTYStdin runs with a terminal as its stdin and controlling
// terminal. It starts a child whose Stdin is that terminal, tries a second
// one meanwhile, reports, then reads a line of the terminal itself.
func helperTTYStdin() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := sh(`read line; echo "got:$line"`)
	first.Stdin = os.Stdin
	p, err := first.Start(ctx)
	if err != nil {
		fmt.Printf("start: %v\n", err)
		return
	}
	second := Command("true")
	second.Stdin = os.Stdin
	p2, err := second.Start(ctx)
	if err == nil {
		p2.Wait(ctx)
		p2.Stdout.Close()
	}
	fmt.Printf("second %v\n", err)
	out, _ := io.ReadAll(p.Stdout)
	p.Stdout.Close()
	fmt.Printf("child %q %v\n", out, p.Wait(ctx))
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("foreground-back %v %v\n", err == nil && fg == unix.Getpgrp(), err)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	fmt.Printf("helper-read %q %v\n", line, err)
	// A child that takes the terminal and then fails to exec gives it back.
	missing := Command("/netrunner/no-such-program")
	missing.Stdin = os.Stdin
	_, err = missing.Start(ctx)
	fg, err2 := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("missing %v foreground-back %v %v\n", errors.Is(err, exec.ErrNotFound), err2 == nil && fg == unix.Getpgrp(), err2)
}

// helperTTYBackground puts another process group in the foreground of its
// terminal, then starts a child whose Stdin is that terminal.
func helperTTYBackground() {
	sleeper := exec.Command("sleep", "1000")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Foreground: true, Ctty: 0}
	if err := sleeper.Start(); err != nil {
		fmt.Printf("sleeper: %v\n", err)
		return
	}
	defer func() {
		sleeper.Process.Kill()
		sleeper.Wait()
	}()
	c := Command("cat")
	c.Stdin = os.Stdin
	_, err := c.Output(context.Background())
	fmt.Printf("output %v\n", err)
	fmt.Printf("invalid %v\n", errors.Is(err, ErrInvalidCommand))
	// A Daemon meets that refusal at its first start, past its own checks,
	// and returns it at once whatever its restart policy.
	c = Command("cat")
	c.Stdin = os.Stdin
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = (&Daemon{Cmd: c, Restart: RestartAlways, Backoff: time.Millisecond}).Run(ctx)
	fmt.Printf("daemon invalid %v\n", errors.Is(err, ErrInvalidCommand))
}

// runOnTerminal runs a test helper in a session of its own whose
// controlling terminal, and stdin, is a new pseudo-terminal; the test holds
// the master. It returns the master and the helper's stdout.
func runOnTerminal(t *testing.T, name string) (*os.File, *bufio.Reader) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	helper := helperCommand(name)
	helper.Stdin, helper.Stdout, helper.Stderr = slave, pw, os.Stderr
	helper.SysProcAttr.Setsid, helper.SysProcAttr.Setctty, helper.SysProcAttr.Ctty = true, true, 0
	err = helper.Start()
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		helper.Process.Kill()
		helper.Wait()
	})
	// The terminal echoes what is typed; drain the master so it never
	// fills.
	go io.Copy(io.Discard, master)
	return master, bufio.NewReader(pr)
}

// helperLine reads one line of a helper's report, failing after 30 s.
func helperLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var line string
	var err error
	within(t, 30*time.Second, "a line from the helper", func() { line, err = r.ReadString('\n') })
	if err != nil {
		t.Fatalf("helper's report: %q, %v", line, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// A child whose Stdin is the program's controlling terminal reads it: it
// runs in the terminal's foreground (not stopped by SIGTTIN), a second such
// child meanwhile is refused with ErrInvalidCommand, and once the child is
// done the terminal is the program's again (it reads it, not stopped).
func TestStdinControllingTerminal(t *testing.T) {
	master, r := runOnTerminal(t, "tty-stdin")
	// The first child waits for this line: the second starts meanwhile.
	if line := helperLine(t, r); !strings.Contains(line, "another child") || !strings.Contains(line, "invalid command") {
		t.Errorf("a second child reading the terminal meanwhile: %s, want ErrInvalidCommand", line)
	}
	if _, err := master.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if line := helperLine(t, r); line != `child "got:hello\n" <nil>` {
		t.Errorf("the child reading the terminal: %s", line)
	}
	if line := helperLine(t, r); line != "foreground-back true <nil>" {
		t.Errorf("after the child: %s, want the terminal back in the program's foreground", line)
	}
	if _, err := master.Write([]byte("second\n")); err != nil {
		t.Fatal(err)
	}
	if line := helperLine(t, r); line != `helper-read "second\n" <nil>` {
		t.Errorf("the program reading its terminal after the child: %s", line)
	}
	if line := helperLine(t, r); line != "missing true foreground-back true <nil>" {
		t.Errorf("after a child with the terminal failed to exec: %s", line)
	}
}

// A program in the background of its terminal cannot lend it: a child
// with the terminal as Stdin is refused, saying why, rather than stopped;
// a restarting Daemon returns that error at once instead of retrying.
func TestStdinTerminalInBackground(t *testing.T) {
	_, r := runOnTerminal(t, "tty-background")
	if line := helperLine(t, r); !strings.Contains(line, "not in its foreground") || !strings.Contains(line, "netrunner: cat: ") {
		t.Errorf("Output with the terminal as Stdin, from the background: %s", line)
	}
	if line := helperLine(t, r); line != "invalid true" {
		t.Errorf("error is ErrInvalidCommand: %s", line)
	}
	if line := helperLine(t, r); line != "daemon invalid true" {
		t.Errorf("a restarting Daemon's Run: %s, want ErrInvalidCommand at once", line)
	}
}
