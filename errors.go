package netrunner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	Signal syscall.Signal // the signal that ended it, or 0
	Stderr []byte         // the stderr tail, when the mode kept one

	name  string // the command, for Error
	cause error  // the context error that made us stop the process, if any
}

// Error names the command and says how it ended: its exit status or the
// signal, the context error that made the package stop it, and the last
// line of the stderr tail.
func (e *ExitError) Error() string {
	var msg string
	if e.Signal != 0 {
		msg = "signal: " + e.Signal.String()
	} else {
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
// long, so that a failing `sh -c '...'` says which script failed.
func commandName(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case a != "" && !strings.ContainsFunc(a, needsQuote):
			b.WriteString(a)
		case strings.ContainsFunc(a, unprintable):
			b.WriteString(strconv.Quote(a))
		default:
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		}
	}
	const most = 120
	if r := []rune(b.String()); len(r) > most {
		return string(r[:most/2]) + "..." + string(r[len(r)-most/2+3:])
	}
	return b.String()
}

func needsQuote(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_-+=/.,:@%^", r))
}

func unprintable(r rune) bool { return !unicode.IsPrint(r) && r != ' ' || r == utf8.RuneError }

// contextError is ctx's error together with its cause (context.Cause):
// errors.Is finds both, so a run cancelled by errgroup or WithCancelCause
// says why, and still matches context.Canceled or DeadlineExceeded.
func contextError(ctx context.Context) error {
	err := ctx.Err()
	cause := context.Cause(ctx)
	if err == nil || cause == nil || cause == err {
		return err
	}
	return &causedError{err, cause}
}

type causedError struct{ err, cause error }

func (e *causedError) Error() string   { return e.err.Error() + ": " + e.cause.Error() }
func (e *causedError) Unwrap() []error { return []error{e.err, e.cause} }
