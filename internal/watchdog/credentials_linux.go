//go:build linux

package watchdog

import (
	"bytes"
	"os"
	"strconv"
)

// credentialLines are the lines of /proc/PID/status that say what a thread
// may do to others: its user and group ids (real, effective, saved, file
// system), supplementary groups and capabilities, and the restrictions it
// took on, which it keeps across exec: no_new_privs (which Landlock, for one,
// needs unless the thread has CAP_SYS_ADMIN) and seccomp filters.
var credentialLines = [][]byte{
	[]byte("Uid:"), []byte("Gid:"), []byte("Groups:"),
	[]byte("CapInh:"), []byte("CapPrm:"), []byte("CapEff:"), []byte("CapBnd:"), []byte("CapAmb:"),
	[]byte("NoNewPrivs:"), []byte("Seccomp:"), []byte("Seccomp_filters:"),
}

// sameCredentials reports whether every thread of process pid has the
// watchdog's credentials. The watchdog starts with its parent's, but the
// parent may give some up later (setuid to an unprivileged user,
// capabilities dropped, a sandbox entered); then it must not have the
// watchdog act with the ones it gave up. (A sandbox that shows in none of
// these lines, such as Landlock entered with CAP_SYS_ADMIN, is not seen.)
func sameCredentials(pid int) bool {
	ours, err := credentials("/proc/self/status")
	if err != nil || ours == "" {
		return false
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		theirs, err := credentials(dir + "/" + task.Name() + "/status")
		if os.IsNotExist(err) {
			continue // a thread that has ended
		}
		if err != nil || theirs != ours {
			return false
		}
	}
	return true
}

func credentials(status string) (string, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return "", err
	}
	var out []byte
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		for _, prefix := range credentialLines {
			if bytes.HasPrefix(line, prefix) {
				out = append(append(out, line...), '\n')
			}
		}
	}
	return string(out), nil
}
