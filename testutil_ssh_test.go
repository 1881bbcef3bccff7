//go:build linux

package netrunner

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshdPath is the OpenSSH server the remote tests run.
const sshdPath = "/usr/sbin/sshd"

// testSSHD is an OpenSSH server on 127.0.0.1 that accepts the current user
// with a key of its own.
type testSSHD struct {
	addr    string
	user    string
	signer  ssh.Signer
	keyFile string // the client's private key, for the ssh command
	cmd     *exec.Cmd
	hostPK  ssh.PublicKey
}

// requireSSHD skips the test when sshd is missing, outside CI; in CI
// (CI=true) a missing sshd fails it: .ci/run installs it.
func requireSSHD(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (%v): CI must install openssh-server (see .ci/run)", sshdPath, err)
		}
		t.Skipf("%s is missing: install openssh-server to run the remote tests", sshdPath)
	}
}

// startSSHD starts sshd on a free port of 127.0.0.1 with a throwaway host
// key and authorized key in a temp dir, no PAM and no system config, and
// stops it when the test ends.
//
// As root, sshd runs in a mount namespace of its own where the user's login
// shell is /bin/sh: a login shell's rc files (this machine's root runs
// pyenv from .bashrc, a second per command) would slow every remote
// command. startSSHDLoginShell keeps the real login shell.
func startSSHD(t testing.TB) *testSSHD { return startSSHDShell(t, os.Geteuid() == 0) }

// startSSHDLoginShell is startSSHD with the user's own login shell.
func startSSHDLoginShell(t testing.TB) *testSSHD { return startSSHDShell(t, false) }

func startSSHDShell(t testing.TB, plainShell bool) *testSSHD {
	t.Helper()
	requireSSHD(t)
	dir := t.TempDir()
	hostKey, hostPK := writeKey(t, filepath.Join(dir, "host_key"))
	keyFile, _ := writeKey(t, filepath.Join(dir, "client_key"))
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// sshd refuses to start without its privilege separation directory;
	// the package's service creates it at boot, which a container skips.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd: %v", err)
	}
	config := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`HostKey %s
AuthorizedKeysFile %s
ListenAddress 127.0.0.1
PermitRootLogin yes
AllowUsers %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
PrintMotd no
PrintLastLog no
UseDNS no
`, hostKey, authorized, u.Username)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd binds the port itself: pick a free one, and try another if
	// something took it in between.
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		args := []string{"-D", "-e", "-f", config, "-p", fmt.Sprint(port)}
		cmd := exec.Command(sshdPath, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if plainShell {
			passwd := shPasswd(t, dir, u.Username)
			cmd = exec.Command("/bin/sh", append([]string{"-c", `mount --bind "$0" /etc/passwd && exec "$@"`, passwd, sshdPath}, args...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Unshareflags: syscall.CLONE_NEWNS}
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			if plainShell {
				t.Logf("no mount namespace for sshd (%v): using the real login shell", err)
				plainShell = false
				continue
			}
			t.Fatalf("start sshd: %v", err)
		}
		listening := make(chan bool, 1)
		var log strings.Builder
		go func() {
			sc := bufio.NewScanner(stderr)
			sent := false
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if !sent && strings.Contains(sc.Text(), "Server listening") {
					listening <- true
					sent = true
				}
			}
			if !sent {
				listening <- false
			}
		}()
		select {
		case ok := <-listening:
			if ok {
				s := &testSSHD{addr: fmt.Sprintf("127.0.0.1:%d", port), user: u.Username, signer: signer, keyFile: keyFile, cmd: cmd, hostPK: hostPK}
				t.Cleanup(func() {
					cmd.Process.Kill()
					cmd.Wait()
				})
				return s
			}
			cmd.Wait()
			if plainShell {
				// No mount namespace here (no CAP_SYS_ADMIN): the login
				// shell it is.
				t.Logf("sshd with /bin/sh as the login shell failed, using the real one:\n%s", log.String())
				plainShell = false
				continue
			}
			if attempt < 3 {
				continue
			}
			t.Fatalf("sshd did not start:\n%s", log.String())
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("sshd did not start in 20s:\n%s", log.String())
		}
	}
}

// shPasswd writes a copy of /etc/passwd in dir where user's login shell is
// /bin/sh and returns its path.
func shPasswd(t testing.TB, dir, user string) string {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == user {
			f[6] = "/bin/sh"
			lines[i] = strings.Join(f, ":")
		}
	}
	path := filepath.Join(dir, "passwd")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKey writes a new ed25519 private key in OpenSSH format to path.
func writeKey(t testing.TB, path string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return path, pk
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dial connects to the server as the current user; the client is closed
// when the test ends.
func (s *testSSHD) dial(t testing.TB) *ssh.Client {
	t.Helper()
	client, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
		User:            s.user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback: ssh.FixedHostKey(s.hostPK),
		Timeout:         20 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh dial %s: %v", s.addr, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// sshTest starts sshd and returns a Host on a fresh connection to it.
func sshTest(t testing.TB) (*testSSHD, *ssh.Client, Host) {
	t.Helper()
	s := startSSHD(t)
	client := s.dial(t)
	return s, client, SSH(client)
}

// remote returns c set to run on h.
func remote(h Host, c *Cmd) *Cmd {
	c.Host = h
	return c
}
