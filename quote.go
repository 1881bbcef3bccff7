package netrunner

import (
	"strconv"
	"strings"
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
// checks Dir and the program, prints the marker line with its pid, and, when
// handshake is set, waits for one line on stdin before the program runs:
// that line comes once the pid is watched (see control.go), so no program
// runs that a lost connection would not end. Then stderr goes where the
// mode says and the program replaces the shell, with exactly Cmd.Env when
// it is set.
func remoteScript(c *Cmd, marker string, handshake bool) string {
	prog, argv := c.remoteProgram()
	var sb strings.Builder
	fail := func(what string, code int) string {
		return " || { printf '%s\\n' " + shellQuote(marker+what) + "; exit " + strconv.Itoa(code) + "; }\n"
	}
	if c.Dir != "" {
		sb.WriteString("cd -- " + shellQuote(c.Dir) + " 2>/dev/null" + fail(remoteNoDir, 126))
	}
	if c.checkRemoteProgram() {
		sb.WriteString("command -v " + shellQuote(prog) + " >/dev/null 2>&1" + fail(remoteNotFound, 127))
	}
	sb.WriteString("printf '%s%d\\n' " + shellQuote(marker) + " \"$$\"\n")
	if handshake {
		sb.WriteString("IFS= read -r _ || exit 1\n")
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
	sb.WriteString(shellWords(append([]string{prog}, argv...)))
	sb.WriteByte('\n')
	return sb.String()
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
