//go:build linux

package netrunner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The remote tests run the commands through a real OpenSSH server on
// 127.0.0.1 (see testutil_ssh_test.go): the remote processes are on this
// machine, so /proc shows them.

// groupMembers lists the live processes of group pgid (zombies count as
// dead: PID 1 here does not reap orphans).
func groupMembers(pgid int) []procInfo {
	var out []procInfo
	for _, pi := range allProcs() {
		if pi.pgid == pgid && pi.state != 'Z' && pi.state != 'X' {
			out = append(out, pi)
		}
	}
	return out
}

// waitGroupGone fails the test unless group pgid has no live member soon.
func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	if !eventually(10*time.Second, func() bool { return len(groupMembers(pgid)) == 0 }) {
		t.Errorf("remote group %d still has members: %v", pgid, groupMembers(pgid))
	}
}

func TestRemoteOutputRunLinesChunks(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	ctx := testCtx(t)

	out, err := remote(h, Command("printf", "%s\n", "one", "two")).Output(ctx)
	if err != nil || string(out) != "one\ntwo\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	res, err := remote(h, sh("echo out; echo oops >&2; exit 3")).Run(ctx)
	ee := exitErr(t, err)
	if ee.Code != 3 || ee.Signal != 0 || string(ee.Stderr) != "oops\n" || !strings.Contains(err.Error(), "sh -c") {
		t.Errorf("Run: %v (code %d, stderr %q)", err, ee.Code, ee.Stderr)
	}
	if string(res.Stdout) != "out\n" {
		t.Errorf("Run stdout = %q", res.Stdout)
	}
	var lines []string
	for line, err := range remote(h, sh("seq 1 1000")).Lines(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(line))
	}
	if len(lines) != 1000 || lines[0] != "1" || lines[999] != "1000" {
		t.Errorf("Lines: %d lines, first %q", len(lines), lines[:1])
	}
	total := 0
	for chunk, err := range remote(h, Command("head", "-c", "3000000", "/dev/zero")).Chunks(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		total += len(chunk)
	}
	if total != 3000000 {
		t.Errorf("Chunks: %d bytes", total)
	}
}

func TestRemoteStartWriteCloseStdin(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	p := start(t, testCtx(t), remote(h, Command("cat")))
	in := pattern(3 << 20)
	go func() {
		p.Write(testCtx(t), in)
		p.CloseStdin()
	}()
	got, err := io.ReadAll(p.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	if at := samePattern(got, len(in)); at >= 0 {
		t.Fatalf("cat returned %d bytes, differing at %d", len(got), at)
	}
	if err := p.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(testCtx(t), []byte("x")); !errors.Is(err, ErrStdinClosed) {
		t.Errorf("Write after CloseStdin: %v", err)
	}
	if st := p.Stats(); st.BytesIn != int64(len(in)) || st.BytesOut != int64(len(in)) || st.ExitCode != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestRemoteStdinReaderAndFile(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	c := remote(h, Command("wc", "-c"))
	c.Stdin = &patternReader{n: 1 << 20}
	out, err := c.Output(testCtx(t))
	if err != nil || strings.TrimSpace(string(out)) != "1048576" {
		t.Errorf("Stdin Reader: %q, %v", out, err)
	}
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, _ := os.ReadFile("/etc/passwd")
	c = remote(h, Command("cat"))
	c.Stdin = f
	out, err = c.Output(testCtx(t))
	if err != nil || !bytes.Equal(out, want) {
		t.Errorf("Stdin *os.File: %d bytes, %v", len(out), err)
	}
}

func TestRemoteStderrModes(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	ctx := testCtx(t)
	script := "echo out; echo err >&2"

	c := remote(h, sh(script))
	c.Stderr = StderrToStdout
	if out, err := c.Output(ctx); err != nil || string(out) != "out\nerr\n" {
		t.Errorf("StderrToStdout: %q, %v", out, err)
	}
	c = remote(h, sh(script+"; exit 1"))
	c.Stderr = StderrDiscard
	_, err := c.Output(ctx)
	if ee := exitErr(t, err); len(ee.Stderr) != 0 {
		t.Errorf("StderrDiscard kept %q", ee.Stderr)
	}
	c = remote(h, sh(script))
	c.Stderr = StderrStream
	p := start(t, ctx, c)
	errOut, err := io.ReadAll(p.Stderr)
	if err != nil || string(errOut) != "err\n" {
		t.Errorf("StderrStream: %q, %v", errOut, err)
	}
	if out, _ := io.ReadAll(p.Stdout); string(out) != "out\n" {
		t.Errorf("StderrStream stdout: %q", out)
	}
	if err := p.Wait(ctx); err != nil {
		t.Error(err)
	}
}

func TestRemoteEnvDir(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	ctx := testCtx(t)
	dir := filepath.Join(t.TempDir(), "a dir 'with' $quotes")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := remote(h, Command("/usr/bin/env"))
	c.Env = []string{"A=1", "B=x y 'z' $HOME `id`", "EMPTY="}
	out, err := c.Output(ctx)
	if want := "A=1\nB=x y 'z' $HOME `id`\nEMPTY=\n"; err != nil || string(out) != want {
		t.Errorf("Env: got %q, %v; want exactly %q", out, err, want)
	}
	c = remote(h, Command("pwd"))
	c.Dir = dir
	if out, err := c.Output(ctx); err != nil || string(out) != dir+"\n" {
		t.Errorf("Dir: %q, %v", out, err)
	}
	c = remote(h, Command("pwd"))
	c.Dir = filepath.Join(dir, "missing")
	_, err = c.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "pwd") || !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing Dir: %v", err)
	}
	_, err = remote(h, Command("no-such-program-netrunner")).Start(ctx)
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("missing program: %v", err)
	}
}

func TestRemoteExitSignal(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	ctx := testCtx(t)
	_, err := remote(h, sh("kill -s USR1 $$")).Run(ctx)
	if ee := exitErr(t, err); ee.Code != -1 || ee.Signal != syscall.SIGUSR1 {
		t.Errorf("kill USR1: code %d signal %v", ee.Code, ee.Signal)
	}
	p := start(t, ctx, remote(h, sh("echo ready; exec sleep 1000")))
	readLine(t, bufio.NewReader(p.Stdout))
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ee := exitErr(t, p.Wait(ctx))
	if ee.Code != -1 || ee.Signal != syscall.SIGINT || p.ExitCode() != -1 {
		t.Errorf("Signal(SIGINT): code %d signal %v", ee.Code, ee.Signal)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit: %v", err)
	}
}

// startFamily starts a remote shell with two background children, one of
// which ignores SIGTERM, and returns once they all run, with their pids.
func startFamily(t *testing.T, ctx context.Context, h Host, killTimeout time.Duration) (*Process, []procInfo) {
	t.Helper()
	c := remote(h, sh(`sleep 1000 & (trap '' TERM; sleep 1001) & echo ready; wait`))
	c.KillTimeout = killTimeout
	p := start(t, ctx, c)
	if line := readLine(t, bufio.NewReader(p.Stdout)); line != "ready" {
		t.Fatalf("first line %q", line)
	}
	var members []procInfo
	waitFor(t, 10*time.Second, "three members in the remote group", func() bool {
		members = groupMembers(p.Pid())
		return len(members) >= 3
	})
	for _, m := range members {
		killPids(t, m.pid)
	}
	return p, members
}

func TestRemoteStopKillCancelEndDescendants(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	t.Run("Stop", func(t *testing.T) {
		p, _ := startFamily(t, testCtx(t), h, 300*time.Millisecond)
		err := p.Stop(testCtx(t))
		if ee := exitErr(t, err); ee.Signal != syscall.SIGTERM {
			t.Errorf("Stop: %v", err)
		}
		waitGroupGone(t, p.Pid())
	})
	t.Run("Kill", func(t *testing.T) {
		p, _ := startFamily(t, testCtx(t), h, time.Minute)
		p.Kill()
		if ee := exitErr(t, p.Wait(testCtx(t))); ee.Signal != syscall.SIGKILL {
			t.Errorf("Kill: %v", ee)
		}
		waitGroupGone(t, p.Pid())
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		p, _ := startFamily(t, ctx, h, 300*time.Millisecond)
		cancel()
		if err := p.Wait(testCtx(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("cancel: %v", err)
		}
		waitGroupGone(t, p.Pid())
	})
	t.Run("exit leaves descendants", func(t *testing.T) {
		c := remote(h, sh(`sleep 1000 & echo $!`))
		c.KillTimeout = 200 * time.Millisecond
		p := start(t, testCtx(t), c)
		pid := readPids(t, bufio.NewReader(p.Stdout), 1)[0]
		killPids(t, pid)
		if err := p.Wait(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if !isDead(pid) {
			t.Errorf("the remote shell's child %d outlived Wait", pid)
		}
	})
}

func TestRemoteConnectionClosedEndsGroup(t *testing.T) {
	s := startSSHD(t)
	client := s.dial(t)
	defer leakCheck(t)()
	p, _ := startFamily(t, testCtx(t), SSH(client), time.Minute)
	client.Close()
	err := p.Wait(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "sh -c") {
		t.Errorf("Wait after the connection closed: %v", err)
	}
	waitGroupGone(t, p.Pid())
}

// The arguments reach the remote program byte for byte.
func TestRemoteHostileArgs(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	args := []string{
		"plain", "two words", "", " ", "'", "''", `"`, `\`, `\'`, `'\''`, "it's",
		"$HOME", "${HOME}", "$(id)", "`id`", ";", "a; touch /tmp/netrunner-pwned", "&&", "|", ">",
		"<", "*", "?", "[a-z]*", "~", "~root", "#", "!", "{a,b}", "\t", "a\tb", "\n", "line1\nline2",
		"-n", "-e", "--", "-", "\x01\x1f\x7f", "\xff\xfe\x80", "é ü 日本", "%s%d%%", "a=b",
	}
	c := remote(h, Command("printf", append([]string{`%s\0`}, args...)...))
	out, err := c.Output(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(out), "\x00")
	got = got[:len(got)-1]
	if len(got) != len(args) {
		t.Fatalf("%d arguments arrived, want %d: %q", len(got), len(args), got)
	}
	for i := range args {
		if got[i] != args[i] {
			t.Errorf("argument %d: got %q, want %q", i, got[i], args[i])
		}
	}
	if _, err := os.Stat("/tmp/netrunner-pwned"); err == nil {
		t.Error("an argument ran as a command")
	}
}

// A remote producer that nobody reads blocks in write(2): its wchar stops
// growing, bounded by the SSH window and the local pipe, and resumes when
// the Stream is read.
func TestRemoteBackpressure(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	p := start(t, testCtx(t), remote(h, Command("head", "-c", "1000000000", "/dev/zero")))
	pid := p.Pid() // the wrapper execs the program: same pid
	blocked := stableWchar(t, pid)
	// x/crypto/ssh's window (2 MiB), sshd's buffers, the local pipe and
	// the copy buffer: far below what head would write unblocked.
	if blocked > 32<<20 {
		t.Errorf("the producer wrote %d bytes before blocking", blocked)
	}
	if p.Stats().BytesOut != 0 {
		t.Errorf("read %d bytes without demand", p.Stats().BytesOut)
	}
	for range 100 {
		if _, err := p.Stdout.Next(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	again := stableWchar(t, pid)
	if again <= blocked {
		t.Errorf("wchar %d after reading, %d before: the producer did not resume", again, blocked)
	}
	t.Logf("remote head blocked after writing %d bytes; %d after 100 chunks were read", blocked, again)
	p.Kill()
	p.Wait(testCtx(t))
	p.Stdout.Close() // it still holds what head wrote
}

func TestRemotePTYResizeEOF(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	p := start(t, testCtx(t), onPTY(remote(h, sh(`stty size; read x; stty size; cat; echo end`))))
	r := bufio.NewReader(p.Stdout)
	if line := strings.TrimRight(readLine(t, r), "\r"); line != "24 80" {
		t.Errorf("first size %q", line)
	}
	if err := p.Resize(Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(testCtx(t), []byte("go\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line := strings.TrimRight(readLine(t, r), "\r")
		if line == "go" {
			continue // the terminal's echo
		}
		if line != "30 100" {
			t.Errorf("size after Resize %q", line)
		}
		break
	}
	p.Write(testCtx(t), []byte("partial"))
	p.CloseStdin() // ^D ends cat's input on the remote terminal
	rest, _ := io.ReadAll(r)
	if !bytes.Contains(rest, []byte("end")) {
		t.Errorf("cat did not end after CloseStdin: %q", rest)
	}
	if err := p.Wait(testCtx(t)); err != nil {
		t.Error(err)
	}
	// A one-shot run gives the terminal no input: cat reads its end at once.
	within(t, 10*time.Second, "Output of cat on a PTY", func() {
		if _, err := onPTY(remote(h, Command("cat"))).Output(testCtx(t)); err != nil {
			t.Error(err)
		}
	})
	c := onPTY(remote(h, Command("cat")))
	c.Stdin = strings.NewReader("from a reader")
	out, err := c.Output(testCtx(t))
	if err != nil || !bytes.Contains(out, []byte("from a reader")) {
		t.Errorf("PTY with a Stdin reader: %q, %v", out, err)
	}
}

func TestRemoteUnsupportedBeforeStart(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	marker := filepath.Join(t.TempDir(), "ran")
	for name, set := range map[string]func(*Cmd){
		"Cgroup":         func(c *Cmd) { c.Cgroup = "x" },
		"CgroupSettings": func(c *Cmd) { c.Cgroup, c.CgroupSettings = "x", map[string]string{"pids.max": "1"} },
		"PipeSize":       func(c *Cmd) { c.PipeSize = 1 << 20 },
	} {
		c := remote(h, sh("touch "+marker))
		set(c)
		_, err := c.Run(testCtx(t))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "sh -c") || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := Pipeline(sh("touch "+marker), remote(h, Command("cat"))).Start(testCtx(t))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("Pipeline with a remote stage: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
	if _, err := remote(SSH(nil), sh("true")).Run(testCtx(t)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("SSH(nil): %v", err)
	}
}

// Closing Stdout of a remote producer ends it as a closed pipe would.
func TestRemoteStdoutClosedSendsSIGPIPE(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	p := start(t, testCtx(t), remote(h, Command("yes")))
	if _, err := p.Stdout.Next(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.Stdout.Close()
	ee := exitErr(t, p.Wait(testCtx(t)))
	if ee.Signal != syscall.SIGPIPE {
		t.Errorf("yes after Stdout.Close: %v", ee)
	}
}

// A login shell that prints from its rc files does not disturb the output.
func TestRemoteLoginShellNoise(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the plain-shell setup needs root: every remote test already uses the login shell")
	}
	s := startSSHDLoginShell(t)
	client := s.dial(t)
	defer leakCheck(t)()
	out, err := remote(SSH(client), Command("echo", strconv.Itoa(42))).Output(testCtx(t))
	if err != nil || string(out) != "42\n" {
		t.Errorf("Output = %q, %v", out, err)
	}
}

// A process that left the group and keeps the output open does not hold
// the run: the output ends once the group is gone and nothing arrives.
func TestRemoteEscapedDescendantDoesNotHoldOutput(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	p := start(t, testCtx(t), remote(h, sh(`setsid sleep 1000 & echo $!`)))
	pid := readPids(t, bufio.NewReader(p.Stdout), 1)[0]
	killPids(t, pid)
	within(t, 10*time.Second, "Wait with an escaped descendant holding stdout", func() {
		if err := p.Wait(testCtx(t)); err != nil {
			t.Error(err)
		}
	})
	within(t, 10*time.Second, "the end of Stdout", func() { io.ReadAll(p.Stdout) })
	syscall.Kill(pid, syscall.SIGKILL)
}

// Hosts are cheap: one per command on the same client shares the client's
// control session, so more commands than sshd's MaxSessions (10) run in
// turn, and concurrently up to its limit.
func TestRemoteManyHostsOneClient(t *testing.T) {
	_, client, _ := sshTest(t)
	defer leakCheck(t)()
	for i := range 15 {
		out, err := remote(SSH(client), Command("echo", strconv.Itoa(i))).Output(testCtx(t))
		if err != nil || string(out) != strconv.Itoa(i)+"\n" {
			t.Fatalf("command %d: %q, %v", i, out, err)
		}
	}
	var ps []*Process
	for range 8 {
		ps = append(ps, start(t, testCtx(t), remote(SSH(client), Command("cat"))))
	}
	for _, p := range ps {
		p.CloseStdin()
		if err := p.Wait(testCtx(t)); err != nil {
			t.Error(err)
		}
	}
}

// Cancelling a remote producer nobody reads ends it and closes Done: the
// output still in flight does not wait for a consumer.
func TestRemoteCancelUnreadOutput(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	ctx, cancel := context.WithCancel(testCtx(t))
	c := remote(h, Command("head", "-c", "100000000", "/dev/zero"))
	c.KillTimeout = time.Minute // the TERM alone must do
	p := start(t, ctx, c)
	stableWchar(t, p.Pid())
	cancel()
	within(t, 10*time.Second, "Wait after cancel", func() {
		if err := p.Wait(testCtx(t)); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait: %v", err)
		}
	})
	waitGroupGone(t, p.Pid())
	p.Stdout.Close()

	c = remote(h, Command("yes"))
	c.MaxOutput = 1 << 20
	res, err := c.Output(testCtx(t))
	if !errors.Is(err, ErrMaxOutput) || len(res) != 1<<20 {
		t.Errorf("MaxOutput: %d bytes, %v", len(res), err)
	}
}

func init() { testHelpers["ssh-parent"] = sshHelperParent }

// sshHelperParent connects to the sshd named in its environment, starts a
// remote shell with a background child, prints the remote group's id and
// waits to be killed.
func sshHelperParent() {
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(os.Getenv("NETRUNNER_SSH_HOSTKEY")))
	if err != nil {
		panic(err)
	}
	keyPEM, err := os.ReadFile(os.Getenv("NETRUNNER_SSH_KEY"))
	if err != nil {
		panic(err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		panic(err)
	}
	client, err := ssh.Dial("tcp", os.Getenv("NETRUNNER_SSH_ADDR"), &ssh.ClientConfig{
		User:            os.Getenv("NETRUNNER_SSH_USER"),
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
	})
	if err != nil {
		panic(err)
	}
	p, err := remote(SSH(client), sh("sleep 1000 & echo ready; wait")).Start(context.Background())
	if err != nil {
		panic(err)
	}
	bufio.NewReader(p.Stdout).ReadString('\n')
	os.Stdout.WriteString(strconv.Itoa(p.Pid()) + "\n")
	select {}
}

// The Go program's death ends its remote commands and their descendants.
func TestRemoteProgramDeathEndsGroup(t *testing.T) {
	s := startSSHD(t)
	defer leakCheck(t)()
	cmd := helperCommand("ssh-parent",
		"NETRUNNER_SSH_ADDR="+s.addr, "NETRUNNER_SSH_USER="+s.user, "NETRUNNER_SSH_KEY="+s.keyFile,
		"NETRUNNER_SSH_HOSTKEY="+string(ssh.MarshalAuthorizedKey(s.hostPK)))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pgid := readPids(t, bufio.NewReader(out), 1)[0]
	members := groupMembers(pgid)
	if len(members) < 2 {
		t.Fatalf("remote group %d: %v", pgid, members)
	}
	for _, m := range members {
		killPids(t, m.pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitGroupGone(t, pgid)
}

// Output read only after the run is over arrives whole: the Stream ends
// when its bridge has delivered the rest, not when the group is gone. The
// size is more than the local pipe holds and less than the SSH window, so
// head can exit while nobody reads.
func TestRemoteReadAfterWait(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	const size = 1536 << 10
	p := start(t, testCtx(t), remote(h, Command("head", "-c", strconv.Itoa(size), "/dev/zero")))
	within(t, 20*time.Second, "Wait with the output unread", func() {
		if err := p.Wait(testCtx(t)); err != nil {
			t.Error(err)
		}
	})
	got, err := io.ReadAll(p.Stdout)
	if err != nil || len(got) != size {
		t.Errorf("read %d bytes after Wait, want %d: %v", len(got), size, err)
	}
}

// What the adversarial pass found at the edges of the wrapper: a command
// line too long for a remote shell is refused before anything is sent (it
// used to drop the connection and every command on it); a program named
// like an option is refused; a name that only a shell builtin answers to is
// not found; the program is run by the path found, also with Env set; a
// relative Dir is not read as cd's "-" or through CDPATH.
func TestRemoteWrapperEdges(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	ctx := testCtx(t)
	other := start(t, ctx, remote(h, sh("echo ready; exec sleep 1000")))
	if line := readLine(t, bufio.NewReader(other.Stdout)); line != "ready" {
		t.Fatalf("first line %q", line)
	}

	_, err := remote(h, Command("true", strings.Repeat("'", 100<<10))).Output(ctx)
	if !errors.Is(err, syscall.E2BIG) {
		t.Errorf("a 400 KiB quoted command line: %v; want an error wrapping E2BIG", err)
	}
	if out, err := remote(h, Command("echo", "still")).Output(ctx); err != nil || string(out) != "still\n" {
		t.Errorf("after the long command line: %q, %v; want the connection still usable", out, err)
	}
	if err := other.Signal(0); err != nil {
		t.Errorf("the running command after the long command line: %v", err)
	}

	if _, err := remote(h, Command("-c", "echo", "INJECTED")).Output(ctx); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("program %q: %v; want ErrInvalidCommand", "-c", err)
	}
	if _, err := remote(h, Command("cd")).Output(ctx); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("program cd (a builtin only): %v; want exec.ErrNotFound", err)
	}
	if _, err := remote(h, Command("/etc")).Output(ctx); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("program /etc (a directory): %v; want exec.ErrNotFound", err)
	}
	if sbin, err := exec.LookPath("chroot"); err == nil && !strings.HasPrefix(sbin, "/usr/bin/") && !strings.HasPrefix(sbin, "/bin/") {
		c := remote(h, Command("chroot", "--version"))
		c.Env = []string{"A=1"}
		if _, err := c.Output(ctx); err != nil {
			t.Errorf("%s with Env set: %v; want it run by the path found", sbin, err)
		}
	}
	c := remote(h, Command("pwd"))
	c.Dir = "-"
	if out, err := c.Output(ctx); err == nil {
		t.Errorf("Dir %q: ran in %q; want a missing directory", c.Dir, out)
	}
	other.Kill()
}

// Cancelling a PTY Start at any moment returns promptly and leaves no
// remote program behind: the program waits for the line that follows its
// group's registration, as without a PTY.
func TestRemotePTYCancelDuringStart(t *testing.T) {
	_, _, h := sshTest(t)
	defer leakCheck(t)()
	for i := range 20 {
		ctx, cancel := context.WithCancel(testCtx(t))
		time.AfterFunc(time.Duration(i)*time.Millisecond, cancel)
		within(t, 10*time.Second, "a cancelled PTY Start", func() {
			if p, err := onPTY(remote(h, Command("sleep", "4242"))).Start(ctx); err == nil {
				if err := p.Wait(testCtx(t)); !errors.Is(err, context.Canceled) {
					t.Errorf("Wait: %v; want context.Canceled", err)
				}
				p.Stdout.Close()
			}
		})
		cancel()
	}
	waitFor(t, 10*time.Second, "no remote sleep 4242 left", func() bool {
		for _, pi := range allProcs() {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pi.pid))
			if pi.state != 'Z' && string(b) == "sleep\x004242\x00" {
				return false
			}
		}
		return true
	})
}
