package netrunner

import (
	"bufio"
	"context"
	"encoding/json"
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

// On Windows the test binary, re-executed, plays every program the tests
// start: no Unix tool is assumed there.
func init() {
	for name, f := range map[string]func(args []string){
		"echo": func(args []string) { fmt.Println(strings.Join(args, " ")) },
		"cat":  func([]string) { io.Copy(os.Stdout, os.Stdin) },
		"args": func(args []string) { json.NewEncoder(os.Stdout).Encode(args) },
		// flood writes 4 KiB blocks of 'y' until stdout breaks, and after
		// each block the total so far to stderr, so a test can watch it stall.
		"flood": func([]string) {
			block := []byte(strings.Repeat("y", 4095) + "\n")
			for total := 0; ; {
				if _, err := os.Stdout.Write(block); err != nil {
					os.Exit(0)
				}
				total += len(block)
				fmt.Fprintln(os.Stderr, total)
			}
		},
		// count writes 0..n-1, one per line.
		"count": func(args []string) {
			n, _ := strconv.Atoi(args[0])
			w := bufio.NewWriter(os.Stdout)
			for i := range n {
				fmt.Fprintln(w, i)
			}
			w.Flush()
		},
		"sleep": func([]string) {
			fmt.Println(os.Getpid())
			time.Sleep(time.Hour)
		},
		// exit writes its second argument to stderr and exits with the first.
		"exit": func(args []string) {
			if len(args) > 1 {
				fmt.Fprint(os.Stderr, args[1])
			}
			code, _ := strconv.Atoi(args[0])
			os.Exit(code)
		},
		// both writes its first argument to stdout, its second to stderr.
		"both": func(args []string) {
			fmt.Fprint(os.Stdout, args[0])
			os.Stdout.Sync()
			fmt.Fprint(os.Stderr, args[1])
		},
		"hold": func([]string) { time.Sleep(time.Hour) },
		// env prints the value of each variable named.
		"env": func(args []string) {
			for _, k := range args {
				fmt.Printf("%s=%s\n", k, os.Getenv(k))
			}
		},
		"pwd": func([]string) {
			dir, _ := os.Getwd()
			fmt.Println(dir)
		},
		// spawn starts a sleeping grandchild that shares its stdout, prints
		// both pids, and sleeps, or exits with "exit", leaving the
		// grandchild holding stdout open.
		"spawn": func(args []string) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "NETRUNNER_TEST_HELPER=hold")
			cmd.Stdout = os.Stdout
			if err := cmd.Start(); err != nil {
				fmt.Println("spawn:", err)
				os.Exit(3)
			}
			fmt.Println(os.Getpid(), cmd.Process.Pid)
			if len(args) > 0 && args[0] == "exit" {
				os.Exit(0)
			}
			time.Sleep(time.Hour)
		},
		// cpu burns 300 ms of CPU and touches 64 MiB.
		"cpu": func([]string) {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = byte(i)
			}
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
			}
			fmt.Println(b[len(b)-1])
		},
		// nobreak survives CTRL_BREAK: a Go program that is notified of
		// os.Interrupt does not exit on it.
		"nobreak": func([]string) {
			signal.Notify(make(chan os.Signal, 1), os.Interrupt)
			fmt.Println(os.Getpid())
			time.Sleep(time.Hour)
		},
		// parent starts spawn through this package, prints the pids, sleeps.
		"parent": func([]string) {
			p, err := helper("spawn").Start(context.Background())
			if err != nil {
				fmt.Println("parent:", err)
				os.Exit(3)
			}
			line, _ := bufio.NewReader(p.Stdout).ReadString('\n')
			fmt.Print(line)
			time.Sleep(time.Hour)
		},
	} {
		testHelpers[name] = func() { f(os.Args[1:]) }
	}
}

// helper returns a Cmd that runs the test binary as the named helper.
func helper(name string, args ...string) *Cmd {
	c := Command(os.Args[0], args...)
	c.Env = append(os.Environ(), "NETRUNNER_TEST_HELPER="+name)
	return c
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

// waitDead fails the test unless every pid is gone within 10 s.
func waitDead(t testing.TB, what string, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		waitFor(t, 10*time.Second, fmt.Sprintf("%s: pid %d to end", what, pid), func() bool { return !alive(pid) })
	}
}

// readInts reads one line of n integers.
func readInts(t testing.TB, r *bufio.Reader, n int) []int {
	t.Helper()
	line, err := r.ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != n {
		t.Fatalf("read %q, %v; want %d numbers", line, err, n)
	}
	out := make([]int, n)
	for i := range f {
		if out[i], err = strconv.Atoi(f[i]); err != nil {
			t.Fatalf("read %q: %v", line, err)
		}
	}
	return out
}

// underWine reports whether the tests run under Wine rather than Windows.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

// handleCount is the number of handles the test process holds.
func handleCount(t testing.TB) int {
	t.Helper()
	var n uint32
	r, _, err := windows.NewLazySystemDLL("kernel32.dll").NewProc("GetProcessHandleCount").Call(uintptr(windows.CurrentProcess()), uintptr(unsafe.Pointer(&n)))
	if r == 0 {
		t.Fatalf("GetProcessHandleCount: %v", err)
	}
	return int(n)
}

// tempDir is t.TempDir, except that under Wine 8, whose file deletion Go's
// os.RemoveAll does not manage ("Invalid function"), what cannot be
// removed is left in the Wine prefix, which CI throws away.
func tempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "netrunner-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil && !underWine() {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}
