//go:build linux

// Where tests go. A test lives beside the file whose code it tests:
// stream.go's in stream_test.go, pty_linux.go's in pty_test.go, and so on.
// Four kinds have files of their own instead: race_test.go (-race
// stress of concurrent calls), stress_test.go (many processes, resource
// limits), fuzz_test.go and bench_test.go. example_test.go holds the godoc
// Examples. Helpers shared by more than one file live here, once; a helper
// one file needs stays in that file; those that every platform's tests use
// are in testutil_portable_test.go, the Windows ones (the test binary as
// every child) in testutil_windows_test.go. main_test.go runs every test
// under goleak and answers the re-executed test binary (helperCommand).

package netrunner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netrunner-go/netrunner/internal/watchdog"
)

// sh returns a Cmd running script with sh -c.
func sh(script string) *Cmd { return Command("sh", "-c", script) }

// onPTY sets c to run on a 24x80 pseudo-terminal and returns it.
func onPTY(c *Cmd) *Cmd {
	c.PTY = &Winsize{Rows: 24, Cols: 80}
	return c
}

// warmUp runs one process, so that what exists once anything has run (the
// parent-death watchdog and its pipes, the runtime's poller descriptors) is
// there before a test takes its baseline of descriptors and children.
var warmUpOnce sync.Once

func warmUp(t testing.TB) {
	t.Helper()
	warmUpOnce.Do(func() {
		if _, err := Command("true").Output(context.Background()); err != nil {
			t.Fatalf("warm-up run of true: %v", err)
		}
	})
}

// fdCount is the number of open descriptors of the test process.
func fdCount(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// openFDs lists the open descriptors with what they point at, for messages.
func openFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var sb strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&sb, " %s->%s", e.Name(), target)
	}
	return sb.String()
}

type procInfo struct {
	pid, ppid, pgid, sid int
	state                byte
	comm                 string
}

func (p procInfo) String() string {
	return fmt.Sprintf("%d(%s %c ppid=%d pgid=%d)", p.pid, p.comm, p.state, p.ppid, p.pgid)
}

// procStat reads /proc/PID/stat.
func procStat(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 > len(s) {
		return procInfo{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[end+2:])
	if len(f) < 4 || f[0] == "" {
		return procInfo{}, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	sid, _ := strconv.Atoi(f[3])
	return procInfo{pid: pid, ppid: ppid, pgid: pgid, sid: sid, state: f[0][0], comm: s[open+1 : end]}, nil
}

// isDead reports whether pid is gone: no such process, or a zombie.
func isDead(pid int) bool {
	pi, err := procStat(pid)
	if err != nil {
		return true
	}
	return pi.state == 'Z' || pi.state == 'X'
}

// notOurUnreapedChild reports whether pid is gone as far as the test
// process is concerned: it does not exist, or it is a zombie that some other
// process must reap. An unreaped child of ours, or a live process, is not.
func notOurUnreapedChild(pid int) (bool, string) {
	pi, err := procStat(pid)
	if err != nil {
		return true, ""
	}
	if pi.ppid == os.Getpid() {
		return false, pi.String()
	}
	if pi.state == 'Z' || pi.state == 'X' {
		return true, ""
	}
	return false, pi.String()
}

// allProcs lists every process visible in /proc.
func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pi, err := procStat(pid); err == nil {
			out = append(out, pi)
		}
	}
	return out
}

// children lists the direct children of the test process, without the
// parent-death watchdog.
func children() []procInfo {
	me, wd := os.Getpid(), watchdog.Pid()
	var out []procInfo
	for _, pi := range allProcs() {
		if pi.ppid == me && pi.pid != wd {
			out = append(out, pi)
		}
	}
	return out
}

// zombieChildren lists the children of the test process in state Z.
func zombieChildren() []procInfo {
	var out []procInfo
	for _, pi := range children() {
		if pi.state == 'Z' || pi.state == 'X' {
			out = append(out, pi)
		}
	}
	return out
}

// eventually is waitFor that reports instead of failing.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// leakCheck takes a baseline of open descriptors and children; the returned
// func checks that both are back to it (and that no child is a zombie).
func leakCheck(t testing.TB) func() {
	t.Helper()
	warmUp(t)
	fds := fdCount(t)
	kids := children()
	return func() {
		t.Helper()
		if !eventually(5*time.Second, func() bool { return fdCount(t) <= fds }) {
			t.Errorf("descriptors leaked: %d open, %d before;%s", fdCount(t), fds, openFDs())
		}
		if !eventually(5*time.Second, func() bool { return len(zombieChildren()) == 0 }) {
			t.Errorf("zombie children of the test process: %v", zombieChildren())
		}
		if !eventually(5*time.Second, func() bool { return len(newChildren(kids)) == 0 }) {
			t.Errorf("children left behind: %v", newChildren(kids))
		}
	}
}

func newChildren(before []procInfo) []procInfo {
	var out []procInfo
	for _, pi := range children() {
		if !slices.ContainsFunc(before, func(b procInfo) bool { return b.pid == pi.pid }) {
			out = append(out, pi)
		}
	}
	return out
}

// wchar is the number of bytes pid has written (/proc/PID/io).
func wchar(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		t.Fatalf("read /proc/%d/io: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/io: %q", pid, line)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/io has no wchar: %q", pid, b)
	return 0
}

// stableWchar polls pid's wchar until it has not changed for 10 polls in a
// row (the writer is blocked) and returns it; it fails if that takes more
// than 15 s (the writer never blocks).
func stableWchar(t testing.TB, pid int) int64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last, same := int64(-1), 0
	for {
		w := wchar(t, pid)
		if w == last && w > 0 {
			same++
			if same >= 10 {
				return w
			}
		} else {
			same = 0
		}
		last = w
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: wchar still growing after 15s (now %d): the writer is never blocked", pid, w)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPids reads n lines from r, each a pid.
func readPids(t testing.TB, r *bufio.Reader, n int) []int {
	t.Helper()
	var pids []int
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a pid line: %q, %v", line, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil || pid <= 0 {
			t.Fatalf("not a pid: %q", line)
		}
		pids = append(pids, pid)
	}
	return pids
}

// killPids SIGKILLs pids that may have escaped, at test end.
func killPids(t testing.TB, pids ...int) {
	t.Cleanup(func() {
		for _, pid := range pids {
			if pid > 0 && !isDead(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// readLine reads one line from r, without its newline.
func readLine(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %q, %v", line, err)
	}
	return strings.TrimRight(line, "\n")
}

// patternBlock is 1 MiB of a byte formula; see patternReader.
const patternBlock = 1 << 20

var patternBase = sync.OnceValue(func() []byte {
	b := make([]byte, patternBlock)
	for i := range b {
		b[i] = byte(i*7 + i>>13)
	}
	return b
})

// patternReader reads n bytes of a pattern that shows a shifted or dropped
// byte: patternBase repeated, with each block's index stamped in its first
// 8 bytes. It makes big inputs without holding them in memory (first-touch
// page faults are slow on these VMs, and so is a byte loop under -race).
type patternReader struct{ off, n int }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n-r.off)]
	base := patternBase()
	for i := 0; i < len(p); {
		i += copy(p[i:], base[(r.off+i)%patternBlock:])
	}
	for k := max(1, r.off/patternBlock); k*patternBlock < r.off+len(p); k++ {
		var stamp [8]byte
		binary.LittleEndian.PutUint64(stamp[:], uint64(k))
		for j, c := range stamp {
			if pos := k*patternBlock + j - r.off; pos >= 0 && pos < len(p) {
				p[pos] = c
			}
		}
	}
	r.off += len(p)
	return len(p), nil
}

// pattern returns the first n bytes of patternReader.
func pattern(n int) []byte {
	b := make([]byte, n)
	io.ReadFull(&patternReader{n: n}, b)
	return b
}

// samePattern reports where got first differs from pattern(n), or -1.
func samePattern(got []byte, n int) int {
	r := &patternReader{n: n}
	want := make([]byte, 64<<10)
	off := 0
	for {
		m, err := r.Read(want)
		if m > 0 {
			if off+m > len(got) {
				return len(got)
			}
			if !bytes.Equal(got[off:off+m], want[:m]) {
				return off + firstDiff(got[off:off+m], want[:m])
			}
			off += m
		}
		if err != nil {
			break
		}
	}
	if off != len(got) {
		return off
	}
	return -1
}

// zeroReader is an endless reader of zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// onlyReader hides every method of r but Read (io.Copy then uses Read).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
