//go:build linux

package netrunner

import (
	"context"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRemoteHead1GiB streams 1 GiB from a remote `head -c` through
// sshd on 127.0.0.1, three ways in each op, and reports each one's MB/s and
// the ratio of netrunner's to the plain session's (target: at least 0.8).
// The three: Stream.Next on a Cmd with an SSH Host (netrunner); an
// x/crypto/ssh session's stdout read and dropped (plain-session); the ssh
// client, if installed, run by os/exec, its stdout read and dropped
// (ssh-command). Each op takes about a minute on 2 shared cores:
//
//	go test -run '^$' -bench RemoteHead1GiB -benchtime 1x -count 3 .
func BenchmarkRemoteHead1GiB(b *testing.B) {
	const size = 1 << 30
	s := startSSHD(b)
	client := s.dial(b)
	h := SSH(client)
	command := "head -c " + itoa(size) + " /dev/zero"
	ctx := context.Background()
	var next, plain, cli time.Duration
	for b.Loop() {
		t0 := time.Now()
		p, err := remote(h, Command("head", "-c", itoa(size), "/dev/zero")).Start(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			chunk, err := p.Stdout.Next(ctx)
			n += len(chunk)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Wait(ctx); err != nil || n != size {
			b.Fatalf("netrunner: %d bytes, %v", n, err)
		}
		next += time.Since(t0)

		t0 = time.Now()
		sess, err := client.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		out, _ := sess.StdoutPipe()
		if err := sess.Start(command); err != nil {
			b.Fatal(err)
		}
		m, err := discard(out)
		if err != nil || m != size || sess.Wait() != nil {
			b.Fatalf("plain session: %d bytes, %v", m, err)
		}
		plain += time.Since(t0)

		if path, err := exec.LookPath("ssh"); err == nil {
			host, port, _ := strings.Cut(s.addr, ":")
			cmd := exec.Command(path, "-i", s.keyFile, "-p", port, "-o", "BatchMode=yes",
				"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
				s.user+"@"+host, command)
			t0 = time.Now()
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			m, err := discard(out)
			if err != nil || m != size || cmd.Wait() != nil {
				b.Fatalf("ssh command: %d bytes, %v", m, err)
			}
			cli += time.Since(t0)
		}
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * size / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(next), "netrunner-MB/s")
	b.ReportMetric(mbps(plain), "plain-session-MB/s")
	if cli > 0 {
		b.ReportMetric(mbps(cli), "ssh-command-MB/s")
	}
	b.ReportMetric(plain.Seconds()/next.Seconds(), "ratio-vs-plain")
}

func itoa(n int) string { return strconv.Itoa(n) }

// discard reads r to the end in reads of the size Next makes by default
// (io.Copy into io.Discard would read 8 KiB at a time).
func discard(r io.Reader) (int64, error) {
	buf := make([]byte, defaultChunkSize)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
