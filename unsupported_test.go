package netrunner

import (
	"errors"
	"testing"
)

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
