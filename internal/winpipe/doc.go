// Package winpipe makes the pipes between a Go program and the children it
// starts on Windows. The program's end is a named pipe opened for overlapped
// I/O: wrapped by os.NewFile, it is driven by the runtime poller (I/O
// completion ports), so a blocked read or write parks a goroutine, not a
// thread, and deadlines interrupt it. The child's end is an ordinary
// synchronous handle, as programs expect of their standard streams.
//
// Windows only; the package is empty elsewhere.
package winpipe
