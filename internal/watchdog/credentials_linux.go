//go:build linux

package watchdog

import (
	"bytes"
	"os"
	"strconv"
)

// credentialLines are the lines of /proc/PID/status that say what a process
// may do to others: its user and group ids (real, effective, saved, file
// system), supplementary groups and capabilities.
var credentialLines = [][]byte{
	[]byte("Uid:"), []byte("Gid:"), []byte("Groups:"),
	[]byte("CapInh:"), []byte("CapPrm:"), []byte("CapEff:"), []byte("CapBnd:"), []byte("CapAmb:"),
}

// sameCredentials reports whether process pid has the watchdog's
// credentials. The watchdog starts with its parent's, but the parent may
// drop some later (setuid to an unprivileged user, capabilities dropped);
// then it must not have the watchdog act with the ones it gave up.
func sameCredentials(pid int) bool {
	theirs, err1 := credentials(strconv.Itoa(pid))
	ours, err2 := credentials("self")
	return err1 == nil && err2 == nil && theirs != "" && theirs == ours
}

func credentials(pid string) (string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
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
