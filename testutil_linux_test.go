package netrunner

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// helperCommand returns a command that re-executes the test binary as the
// test helper registered under name (see testHelpers), with env added. The
// helper dies with the test process.
func helperCommand(name string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{"NETRUNNER_TEST_HELPER=" + name}, env...)...)
	// Under -race, a program sleeps 1s at exit by default; helpers need not.
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}
