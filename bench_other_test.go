//go:build unix && !linux

package netrunner

import "os"

// tunedPipe makes the tuned reference's pipe. Without F_SETPIPE_SZ it keeps
// the system's size; os.Pipe already puts the read end on the poller.
func tunedPipe() (r, w *os.File, err error) { return os.Pipe() }
