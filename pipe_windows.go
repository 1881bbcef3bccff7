package netrunner

import "fmt"

// Pipes on Windows are not implemented yet; pipe_linux.go has the same
// functions.

func pipeCloexec(*[2]int) error { return errNoWindowsStart }

func setPipeSize(int, int) error { return fmt.Errorf("PipeSize: %w", ErrUnsupported) }

func growPipe(int) {}

func pipeBuffered(int) (int, error) { return 0, errNoWindowsStart }
