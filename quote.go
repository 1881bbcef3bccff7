package netrunner

import (
	"strconv"
	"strings"
	"syscall"
)

// shellQuote quotes s as one word for a POSIX shell: inside single quotes
// every byte stands for itself, so only the single quote needs care, and it
// is written as '\” (end the quoted part, an escaped quote, start again).
// The result is plain bytes: a non-UTF-8 argument reaches the program as it
// was given.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellWords quotes each of words and joins them with spaces.
func shellWords(words []string) string {
	var sb strings.Builder
	for i, w := range words {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(shellQuote(w))
	}
	return sb.String()
}

// remoteMarker starts the line the wrapper prints on stdout before it runs
// the program; a nonce of the start's own and what follows say how the start
// went. The nonce keeps the line apart from anything a login shell's rc
// files print: only what reads the command line can forge it.
const remoteMarker = "\x1enetrunner-start-"

// Outcomes of the wrapper's checks, after remoteMarker. A pid is a number.
const (
	remoteNoDir    = "nodir"
	remoteNotFound = "notfound"
)

// remoteScript is the command line sent with the SSH "exec" request. sshd
// runs it with the user's login shell, which must be a POSIX shell, in a
// session of its own: the shell's pid is also its process group's id, and
// the program keeps both, since it replaces the shell with exec. The script
// checks Dir and the program, prints the marker line with its pid, and
// waits for one line on stdin before the program runs: that line comes once
// the pid is watched (see control.go), so no program runs that a lost
// connection or a cancelled Start would not end. On a terminal the line is
// read with echo off, so it never shows in the output. Then stderr goes
// where the mode says and the program replaces the shell, with exactly
// Cmd.Env when it is set.
//
// The program is looked up in the remote PATH as exec.LookPath does and
// run by the path found, so that env -i (whose PATH is not the login
// shell's) runs what was checked, and never a shell builtin, function or
// alias; a directory or a file that is not executable counts as not found.
func remoteScript(c *Cmd, marker string) string {
	prog, argv := c.remoteProgram()
	var sb strings.Builder
	fail := func(what string, code int) string {
		return " || { printf '%s\\n' " + shellQuote(marker+what) + "; exit " + strconv.Itoa(code) + "; }\n"
	}
	if c.Dir != "" {
		dir := c.Dir
		if !strings.HasPrefix(dir, "/") {
			dir = "./" + dir // not CDPATH's, nor cd -'s $OLDPWD
		}
		sb.WriteString("cd -P " + shellQuote(dir) + " 2>/dev/null" + fail(remoteNoDir, 126))
	}
	run := shellQuote(prog)
	if c.checkRemoteProgram() {
		// As exec.LookPath does: a name with a slash is a path; any other
		// is searched in $PATH (an empty entry is the directory).
		q := shellQuote(prog)
		sb.WriteString("case " + q + " in */*) p=" + q + " ;; *) p=; set -f; IFS=:; for d in $PATH; do " +
			"if [ -f \"${d:-.}\"/" + q + " ] && [ -x \"${d:-.}\"/" + q + " ]; then p=\"${d:-.}\"/" + q + "; break; fi; done; unset IFS; set +f ;; esac\n")
		sb.WriteString("[ -n \"$p\" ] && [ -f \"$p\" ] && [ -x \"$p\" ]" + fail(remoteNotFound, 127))
		run = "\"$p\""
	}
	if c.PTY != nil {
		// Before the marker: the line that follows it must not echo.
		sb.WriteString("s=$(stty -g 2>/dev/null); stty -echo 2>/dev/null\n")
	}
	sb.WriteString("printf '%s%d\\n' " + shellQuote(marker) + " \"$$\"\n")
	sb.WriteString("IFS= read -r _ || exit 1\n")
	if c.PTY != nil {
		sb.WriteString("[ -n \"$s\" ] && stty \"$s\" 2>/dev/null\n")
	}
	switch c.Stderr {
	case StderrToStdout:
		sb.WriteString("exec 2>&1\n")
	case StderrDiscard:
		sb.WriteString("exec 2>/dev/null\n")
	}
	sb.WriteString("exec ")
	if c.Env != nil {
		sb.WriteString("env -i -- ")
		sb.WriteString(shellWords(c.Env))
		sb.WriteByte(' ')
	}
	sb.WriteString(run)
	if len(argv) > 0 {
		sb.WriteByte(' ')
		sb.WriteString(shellWords(argv))
	}
	sb.WriteByte('\n')
	return sb.String()
}

// maxRemoteScript is the longest command line sent: OpenSSH drops the
// connection (every command on it) for a packet past 256 KiB, and a shell
// refuses a -c string past 128 KiB (E2BIG), so a longer one is refused
// before anything is sent.
const maxRemoteScript = 120 << 10

func (c *Cmd) checkRemoteScript(h *sshHost, script string) error {
	if len(script) > maxRemoteScript {
		return commandErrorf(c.name(), "%s: the remote command line is %d bytes once quoted, more than the %d a remote shell takes: %w", h.name, len(script), maxRemoteScript, syscall.E2BIG)
	}
	return nil
}

// remoteProgram returns the program to run and its arguments. A shell's
// exec cannot give a program an argv[0] other than its name, so Args[0] is
// not sent.
func (c *Cmd) remoteProgram() (string, []string) {
	prog := c.Path
	if prog == "" {
		prog = c.Args[0]
	}
	if len(c.Args) == 0 {
		return prog, nil
	}
	return prog, c.Args[1:]
}

// checkRemoteProgram reports whether the wrapper can look the program up
// before it runs: under the remote PATH, which Cmd.Env may replace (then
// env looks it up, and a missing program exits with status 127), and
// unless the name would read as an option to command -v.
func (c *Cmd) checkRemoteProgram() bool {
	prog, _ := c.remoteProgram()
	if strings.HasPrefix(prog, "-") {
		return false
	}
	for _, kv := range c.Env {
		if strings.HasPrefix(kv, "PATH=") {
			return false
		}
	}
	return true
}
