//go:build !linux

package netrunner

import (
	"errors"
	"io"
)

// spliceTo is Linux only; elsewhere WriteTo copies.
func (s *Stream) spliceTo(io.Writer) (int64, bool, error) { return 0, false, nil }

var errDrainOnly = errors.New("drain only")
