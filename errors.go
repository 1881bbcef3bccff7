package netrunner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

var (
	// ErrInvalidCommand reports a Cmd that cannot be started as configured:
	// an empty name, a NUL byte in the name, an argument, the environment or
	// the directory, or an option value out of range. Nothing is spawned.
	ErrInvalidCommand = errors.New("invalid command")

	// ErrMaxOutput reports that a process wrote more than Cmd.MaxOutput bytes
	// to stdout; the process was stopped and the output up to the limit kept.
	ErrMaxOutput = errors.New("output exceeds MaxOutput")

	// ErrStdinClosed is returned by Process.Write once stdin is closed, or
	// when stdin is not a pipe the caller writes to (Cmd.Stdin was set).
	ErrStdinClosed = errors.New("stdin closed")

	// ErrLineTooLong ends Cmd.Lines when a line exceeds max(ChunkSize, 64 KiB).
	ErrLineTooLong = errors.New("line too long")

	// ErrUnsupported reports a feature this platform or kernel lacks. It
	// also matches errors.ErrUnsupported, so code that checks for the
	// standard library's sentinel needs nothing package-specific.
	ErrUnsupported error = &unsupportedError{}
)

// unsupportedError is ErrUnsupported's type: a sentinel of its own (its
// message does not repeat the standard one) that errors.Is also equates
// with errors.ErrUnsupported.
type unsupportedError struct{}

func (*unsupportedError) Error() string { return "not supported on this platform" }

func (*unsupportedError) Is(target error) bool { return target == errors.ErrUnsupported }

// ExitError reports a process that did not exit with status 0.
//
// When the process was stopped because the context passed to Start, Run,
// Output, Chunks or Lines ended, the ExitError also matches that context's
// error: errors.Is(err, context.DeadlineExceeded) holds.
type ExitError struct {
	Code   int            // exit code; -1 when a signal ended the process
	Signal syscall.Signal // the signal that ended it, or 0 (also when a remote host did not name it)
	Stderr []byte         // the stderr tail, when the mode kept one

	name  string // the command, for Error
	cause error  // the context error that made us stop the process, if any
}

// Error names the command and says how it ended: its exit status or the
// signal, the context error that made the package stop it, and the last
// line of the stderr tail.
func (e *ExitError) Error() string {
	var msg string
	switch {
	case e.Signal != 0:
		msg = "signal: " + e.Signal.String()
	case e.Code < 0:
		// A remote host reports some signals without a name (OpenSSH names
		// only the common ones).
		msg = "killed by a signal the host did not name"
	default:
		msg = "exit status " + strconv.Itoa(e.Code)
	}
	if e.cause != nil {
		msg += " (" + e.cause.Error() + ")"
	}
	if last := lastLine(e.Stderr); len(last) > 0 {
		msg += ": " + strconv.Quote(string(last))
	}
	return "netrunner: " + e.name + ": " + msg
}

// Unwrap returns the context error that ended the run, if one did.
func (e *ExitError) Unwrap() error { return e.cause }

// lastLine returns the last non-empty line of b, shortened to fit an error
// message: the end of stderr usually says why a program failed.
func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\r\n\t ")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	const most = 200
	if len(b) > most {
		b = b[len(b)-most:]
	}
	return b
}

// commandError is the package's one error shape, "netrunner: COMMAND: OP:
// ERR", where COMMAND is the command line as commandName shows it (a
// pipeline's: its stages joined by " | "). An empty op is left out.
func commandError(name, op string, err error) error {
	if op == "" {
		return fmt.Errorf("netrunner: %s: %w", name, err)
	}
	return fmt.Errorf("netrunner: %s: %s: %w", name, op, err)
}

// commandErrorf is commandError with a message of its own, which may wrap
// errors with %w.
func commandErrorf(name, format string, args ...any) error {
	return fmt.Errorf("netrunner: %s: "+format, append([]any{name}, args...)...)
}

// invalidf returns an ErrInvalidCommand naming the command and what is wrong.
func invalidf(name, format string, args ...any) error {
	return commandError(name, fmt.Sprintf(format, args...), ErrInvalidCommand)
}

// commandName shows a command line in errors: the whole argv, each
// argument quoted as a shell would need it, shortened in the middle when
// long, so that a failing `sh -c '...'` says which script failed. Only the
// arguments that can show are quoted: a huge argv costs no more than a
// short one.
func commandName(argv []string) string {
	const most = 120 // runes
	var head, tail []string
	size, i := 0, 0
	for ; i < len(argv) && size <= most; i++ {
		q := quoteArg(argv[i])
		head = append(head, q)
		size += utf8.RuneCountInString(q) + 1
	}
	size, j := 0, len(argv)
	for ; j > i && size <= most; j-- {
		q := quoteArg(argv[j-1])
		tail = append(tail, q)
		size += utf8.RuneCountInString(q) + 1
	}
	// What lies between head and tail (j > i) is past the shortening.
	slices.Reverse(tail)
	s := strings.Join(append(head, tail...), " ")
	if r := []rune(s); len(r) > most {
		return string(r[:most/2]) + "..." + string(r[len(r)-most/2+3:])
	}
	return s
}

// quoteArg quotes a as a shell would need it, or as a Go string when it
// holds what a terminal would not show.
func quoteArg(a string) string {
	switch {
	case a != "" && !strings.ContainsFunc(a, needsQuote):
		return a
	case strings.ContainsFunc(a, unprintable):
		return strconv.Quote(a)
	}
	return shellQuote(a)
}

func needsQuote(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_-+=/.,:@%^", r))
}

func unprintable(r rune) bool { return !unicode.IsPrint(r) && r != ' ' || r == utf8.RuneError }

// contextError is ctx's error together with its cause (context.Cause), for
// the errors this package makes of it (Wait's, ExitError's, Run's): a run
// cancelled by errgroup or WithCancelCause says why, and still matches
// context.Canceled or DeadlineExceeded. errors.Is matches the cause itself
// but does not look inside it: with errgroup the cause is another task's
// error, which this run's error must not pass for.
func contextError(ctx context.Context) error {
	err := ctx.Err()
	cause := context.Cause(ctx)
	if err == nil || cause == nil || cause == err {
		return err
	}
	return &causedError{err, cause}
}

type causedError struct{ err, cause error }

func (e *causedError) Error() string {
	return e.err.Error() + " (cause: " + strings.TrimPrefix(e.cause.Error(), "netrunner: ") + ")"
}

func (e *causedError) Unwrap() error        { return e.err }
func (e *causedError) Is(target error) bool { return target == e.cause }
