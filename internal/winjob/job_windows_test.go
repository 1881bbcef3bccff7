package winjob

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The test binary plays the programs the tests start, chosen by
// WINJOB_HELPER.
func TestMain(m *testing.M) {
	switch os.Getenv("WINJOB_HELPER") {
	case "":
		os.Exit(m.Run())
	case "args": // prints its arguments as JSON
		json.NewEncoder(os.Stdout).Encode(os.Args[1:])
	case "exit": // exits with the code in its argument
		code, _ := strconv.Atoi(os.Args[1])
		os.Exit(code)
	case "sleep":
		fmt.Println(os.Getpid())
		time.Sleep(time.Hour)
	case "spawn": // starts a sleeping grandchild, prints both pids, sleeps or exits
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "WINJOB_HELPER=sleep")
		if err := cmd.Start(); err != nil {
			fmt.Println("spawn:", err)
			os.Exit(3)
		}
		fmt.Println(os.Getpid(), cmd.Process.Pid)
		if len(os.Args) > 1 && os.Args[1] == "exit" {
			os.Exit(0)
		}
		time.Sleep(time.Hour)
	case "parent": // starts "spawn" through Start, prints its pids, sleeps
		p, out := startHelper(nil, "spawn")
		line, _ := bufio.NewReader(out).ReadString('\n')
		fmt.Print(p.Pid, " ", line)
		time.Sleep(time.Hour)
	case "cpu": // burns CPU for a while and touches 64 MiB
		b := make([]byte, 64<<20)
		for i := range b {
			b[i] = byte(i)
		}
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		}
		fmt.Println(b[len(b)-1])
	case "break": // waits for CTRL_BREAK, then exits 7
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt)
		fmt.Println("ready")
		<-c
		os.Exit(7)
	case "handle": // writes to the handle in its argument, were it inherited
		h, _ := strconv.ParseUint(os.Args[1], 10, 64)
		var n uint32
		windows.WriteFile(windows.Handle(h), []byte("leaked"), &n, nil)
	default:
		os.Exit(2)
	}
	os.Exit(0)
}

// startHelper starts the test binary as helper with args; stdout comes back
// through the returned reader, which fails t (when non-nil) if it stalls.
func startHelper(t *testing.T, helper string, args ...string) (*Process, io.Reader) {
	return startHelperEnv(t, helper, "X=1", args...)
}

func startHelperEnv(t *testing.T, helper, extra string, args ...string) (*Process, io.Reader) {
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	env := append(os.Environ(), "WINJOB_HELPER="+helper, extra)
	self, _ := os.Executable()
	p, err := Start(&Attr{
		Path:  self,
		Args:  append([]string{self}, args...),
		Env:   env,
		Stdio: [3]windows.Handle{0, windows.Handle(w.Fd()), windows.Handle(os.Stderr.Fd())},
	})
	w.Close()
	if err != nil {
		r.Close()
		if t == nil {
			panic(err)
		}
		t.Fatal(err)
	}
	if t != nil {
		t.Cleanup(func() {
			p.Close()
			r.Close()
		})
	}
	return p, r
}

func readPids(t *testing.T, r io.Reader, n int) []int {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != n {
		t.Fatalf("read %q, %v; want %d pids", line, err, n)
	}
	pids := make([]int, n)
	for i := range f {
		if pids[i], err = strconv.Atoi(f[i]); err != nil {
			t.Fatalf("read %q: %v", line, err)
		}
	}
	return pids
}

// alive reports whether pid names a running process.
func alive(pid int) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err == nil && ev == uint32(windows.WAIT_TIMEOUT)
}

func waitDead(t *testing.T, what string, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		for end := time.Now().Add(10 * time.Second); alive(pid); {
			if time.Now().After(end) {
				t.Fatalf("%s: pid %d still runs after 10s", what, pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Each argument reaches the child as it was, by Windows' quoting rules.
func TestArgsRoundTrip(t *testing.T) {
	args := []string{
		"plain", "", "two words", `a"quote`, `"quoted"`, `back\slash`, `trailing\`,
		`trailing\\`, `space and trailing\`, `\"`, `\\"`, "tab\there", `C:\Program Files\x`,
		`""`, `a\\\"b`, "ünïcødé", " ", `\`,
	}
	p, out := startHelper(t, "args", args...)
	var got []string
	if err := json.NewDecoder(out).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", args) {
		t.Errorf("the child got\n%q\nwant\n%q", got, args)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestExitCode(t *testing.T) {
	for _, code := range []int{0, 3, 255, 1000} {
		p, _ := startHelper(t, "exit", strconv.Itoa(code))
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		if got, err := p.ExitCode(); err != nil || int(got) != code {
			t.Errorf("exit %d: ExitCode = %d, %v", code, got, err)
		}
	}
}

// Terminate ends the child and the grandchild it started.
func TestTerminateEndsTree(t *testing.T) {
	p, out := startHelper(t, "spawn")
	pids := readPids(t, out, 2)
	if n, err := p.Active(); err != nil || n != 2 {
		t.Errorf("Active = %d, %v; want 2", n, err)
	}
	if err := p.Terminate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if code, _ := p.ExitCode(); code != ExitKilled {
		t.Errorf("exit code %d after Terminate; want %d", code, ExitKilled)
	}
	waitDead(t, "after Terminate", pids...)
	if n, err := p.Active(); err != nil || n != 0 {
		t.Errorf("Active = %d, %v after Terminate; want 0", n, err)
	}
}

// A grandchild left behind by an exited child is still in the job.
func TestLeftoverStaysInJob(t *testing.T) {
	p, out := startHelper(t, "spawn", "exit")
	pids := readPids(t, out, 2)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Active(); err != nil || n != 1 || !alive(pids[1]) {
		t.Fatalf("after the child's exit: Active = %d, %v; grandchild alive %v", n, err, alive(pids[1]))
	}
	p.Terminate()
	waitDead(t, "leftover after Terminate", pids[1])
}

// Closing the job's handle ends everything in it.
func TestCloseEndsTree(t *testing.T) {
	p, out := startHelper(t, "spawn")
	pids := readPids(t, out, 2)
	p.Close()
	waitDead(t, "after Close", pids...)
}

// A program that dies, even by TerminateProcess, takes its children's jobs
// along: what they started dies with it.
func TestParentDeathEndsTree(t *testing.T) {
	parent, out := startHelper(t, "parent")
	pids := readPids(t, out, 3) // child, then grandchild and great-grandchild
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d is not running", pid)
		}
	}
	// TerminateProcess of the parent alone, not its job.
	if err := windows.TerminateProcess(parent.process, 9); err != nil {
		t.Fatal(err)
	}
	waitDead(t, "after the parent's death", pids...)
}

func TestNotFound(t *testing.T) {
	_, err := Start(&Attr{Path: `C:\no\such\program.exe`, Args: []string{"program"}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v; want ErrNotFound", err)
	}
}

func TestTimesAndMemory(t *testing.T) {
	p, _ := startHelper(t, "cpu")
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	user, sys, err := p.Times()
	if err != nil || user+sys < 100*time.Millisecond {
		t.Errorf("Times = %v, %v, %v; want at least 100ms in all", user, sys, err)
	}
	if underWine() {
		return // measured: Wine 8 reports 0 for every memory counter of an exited process
	}
	peak, err := p.PeakWorkingSet()
	if err != nil || peak < 64<<20 {
		t.Errorf("PeakWorkingSet = %d, %v; want at least 64 MiB", peak, err)
	}
}

// Only the standard handles are inherited, not every inheritable one.
func TestOnlyStdHandlesInherited(t *testing.T) {
	// An inheritable pipe: were the child to inherit its write end, what it
	// writes there would come out of the read end. Checking the handle's
	// value alone would not do: the child may have a handle of its own by
	// the same number.
	var r, w windows.Handle
	sa := &windows.SecurityAttributes{InheritHandle: 1}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	if err := windows.CreatePipe(&r, &w, sa, 0); err != nil {
		t.Fatal(err)
	}
	rf := os.NewFile(uintptr(r), "r")
	defer rf.Close()
	p, _ := startHelper(t, "handle", strconv.FormatUint(uint64(w), 10))
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	windows.CloseHandle(w) // the only write end left, unless the child had one
	got, err := io.ReadAll(rf)
	if err != nil || len(got) != 0 {
		t.Errorf("the parent's inheritable pipe carried %q, %v from the child", got, err)
	}
}

// Break sends CTRL_BREAK to the child's group, which a Go program sees as
// os.Interrupt.
func TestBreak(t *testing.T) {
	if underWine() {
		// Measured: Wine 8 fails GenerateConsoleCtrlEvent (invalid access
		// without a terminal, invalid handle with one or a new console).
		t.Skip("Wine 8 cannot deliver console control events")
	}
	p, out := startHelper(t, "break")
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	if err := p.Break(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Terminate()
		<-done
		t.Fatal("the child did not exit on CTRL_BREAK")
	}
	if code, _ := p.ExitCode(); code != 7 {
		t.Errorf("exit code %d; want 7 (the handler ran)", code)
	}
}

// underWine reports whether the tests run under Wine rather than Windows.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}
