//go:build !linux

package netrunner

import (
	"context"
	"io"
)

// spliceTo is Linux only; elsewhere WriteTo copies.
func (s *Stream) spliceTo(context.Context, io.Writer) (int64, bool, error) { return 0, false, nil }
