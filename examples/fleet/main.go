// Command fleet runs the same command on several hosts over SSH and prints
// their output line by line, each line prefixed by its host.
//
//	go run ./examples/fleet -host alice@web1:22 -host alice@web2:22 -j 2 -- uptime
//
// At most -j hosts run at a time (errgroup.SetLimit). Authentication uses
// the SSH agent (SSH_AUTH_SOCK) and, with -key, a private key file; host
// keys are checked against -known-hosts (~/.ssh/known_hosts by default).
// Ctrl-C cancels the context: every remote command is stopped (SIGTERM to
// its remote process group, SIGKILL after a grace), descendants included,
// and fleet exits once they are all gone. The exit status is 1 if any host
// failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"

	"github.com/netrunner-go/netrunner"
)

type hostList []string

func (h *hostList) String() string     { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var hosts hostList
	flag.Var(&hosts, "host", "user@host:port to run on (repeat for several)")
	jobs := flag.Int("j", 4, "hosts at a time")
	keyFile := flag.String("key", "", "private key file (unencrypted), besides the agent")
	home, _ := os.UserHomeDir()
	knownHosts := flag.String("known-hosts", filepath.Join(home, ".ssh", "known_hosts"), "known_hosts file")
	insecure := flag.Bool("insecure", false, "accept any host key (test setups only)")
	flag.Parse()
	if len(hosts) == 0 || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: fleet -host user@host:port [-host ...] [-j N] -- command [args...]")
		os.Exit(2)
	}
	auth, err := authMethods(*keyFile)
	if err != nil {
		fatal(err)
	}
	hostKeys := ssh.InsecureIgnoreHostKey()
	if !*insecure {
		if hostKeys, err = knownhosts.New(*knownHosts); err != nil {
			fatal(fmt.Errorf("known hosts: %w (or use -insecure for a test setup)", err))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var out sync.Mutex // one line at a time on stdout
	g := new(errgroup.Group)
	g.SetLimit(*jobs)
	failed := false
	for _, target := range hosts {
		g.Go(func() error {
			err := runOn(ctx, target, auth, hostKeys, flag.Args(), func(line string) {
				out.Lock()
				fmt.Printf("%s: %s\n", target, line)
				out.Unlock()
			})
			if err != nil {
				out.Lock()
				fmt.Fprintf(os.Stderr, "%s: %v\n", target, err)
				failed = true
				out.Unlock()
			}
			return nil // one host failing does not stop the others
		})
	}
	g.Wait()
	if failed || ctx.Err() != nil {
		os.Exit(1)
	}
}

// runOn dials target and runs argv there, passing each output line to emit.
func runOn(ctx context.Context, target string, auth []ssh.AuthMethod, hostKeys ssh.HostKeyCallback, argv []string, emit func(string)) error {
	user, addr, ok := strings.Cut(target, "@")
	if !ok {
		return errors.New("want user@host:port")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	client, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: hostKeys, Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer client.Close()
	cmd := netrunner.Command(argv[0], argv[1:]...)
	cmd.Host = netrunner.SSH(client)
	cmd.Stderr = netrunner.StderrToStdout
	cmd.KillTimeout = 2 * time.Second
	for line, err := range cmd.Lines(ctx) {
		if err != nil {
			return err
		}
		emit(string(line))
	}
	return nil
}

func authMethods(keyFile string) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if keyFile != "" {
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyFile, err)
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	if len(methods) == 0 {
		return nil, errors.New("no SSH agent and no -key: nothing to authenticate with")
	}
	return methods, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleet:", err)
	os.Exit(1)
}
