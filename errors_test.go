package netrunner

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
)

// Errors show the whole command line, quoted the way a shell would need
// it, so that a failing `sh -c` says which script failed.
func TestCommandName(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"true"}, "true"},
		{[]string{"sh", "-c", "echo hi; exit 3"}, `sh -c 'echo hi; exit 3'`},
		{[]string{"printf", "it's"}, `printf 'it'\''s'`},
		{[]string{"prog", ""}, `prog ''`},
		{[]string{"prog", "a\tb\x00"}, `prog "a\tb\x00"`},
		{[]string{"prog", "\xff"}, `prog "\xff"`},
		{[]string{"/usr/bin/env", "K=V", "a,b:c@d%e^f+g"}, `/usr/bin/env K=V a,b:c@d%e^f+g`},
		{[]string{"echo", "héllo wörld"}, `echo 'héllo wörld'`},
	} {
		if got := commandName(tc.argv); got != tc.want {
			t.Errorf("commandName(%q) = %s; want %s", tc.argv, got, tc.want)
		}
	}
	got := commandName([]string{"echo", long, "end"})
	if len([]rune(got)) != 120 || !strings.HasPrefix(got, "echo xxx") || !strings.HasSuffix(got, "xxx end") || !strings.Contains(got, "...") {
		t.Errorf("commandName of a long command = %q (%d runes); want 120 runes, its start and its end", got, len([]rune(got)))
	}
	wide := commandName([]string{"echo", strings.Repeat("é", 200)})
	if !strings.HasPrefix(wide, "echo 'éé") || strings.ContainsRune(wide, '\uFFFD') {
		t.Errorf("commandName cut a rune in two: %q", wide)
	}
}

// A context ended with a cause gives an error that matches both the
// context's error and the cause, and says the cause.
func TestContextErrorKeepsCause(t *testing.T) {
	boom := errors.New("boom")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(boom)
	err := contextError(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, boom) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("contextError = %v; want it to match context.Canceled and the cause, and say it", err)
	}
	plain, cancelPlain := context.WithCancel(context.Background())
	cancelPlain()
	if err := contextError(plain); err != context.Canceled {
		t.Errorf("contextError without a cause = %v; want context.Canceled itself", err)
	}
}

// Code written against the standard library's sentinel recognises what this
// package reports as unsupported, wrapped or not.
func TestErrUnsupportedIsStandard(t *testing.T) {
	wrapped := commandError("sh", "PTY", ErrUnsupported)
	for _, err := range []error{ErrUnsupported, wrapped} {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("errors.Is(%v, errors.ErrUnsupported) = false", err)
		}
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("errors.Is(%v, ErrUnsupported) = false", err)
		}
	}
	if errors.Is(ErrUnsupported, ErrInvalidCommand) || errors.Is(ErrInvalidCommand, errors.ErrUnsupported) {
		t.Error("ErrUnsupported and ErrInvalidCommand match each other")
	}
	if got, want := wrapped.Error(), `netrunner: sh: PTY: not supported on this platform`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// An ExitError says how the process ended, also when a remote host reported
// a signal without naming it.
func TestExitErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		e    ExitError
		want string
	}{
		{ExitError{Code: 3, name: "sh"}, "netrunner: sh: exit status 3"},
		{ExitError{Code: -1, Signal: syscall.SIGKILL, name: "sh"}, "netrunner: sh: signal: killed"},
		{ExitError{Code: -1, name: "sh"}, "netrunner: sh: killed by a signal the host did not name"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q; want %q", tc.e, got, tc.want)
		}
	}
}
