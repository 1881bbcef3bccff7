package winpipe

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/windows"
)

// DefaultSize is the buffer a pipe gets when none is asked for: what a
// Linux pipe holds by default, so a producer runs as far ahead of a
// stopped consumer on both systems.
const DefaultSize = 64 << 10

var serial atomic.Uint64

// New returns the two ends of a new pipe: parent, opened for overlapped
// I/O, and child, a synchronous handle; parentReads says which end reads.
// Neither is inheritable: a spawn duplicates the child's end for the child
// alone. size is the pipe's buffer in bytes (0: DefaultSize).
//
// The pipe's name is unique (this process's id, a counter and 64 random
// bits), it admits one instance, created here first (a squatter's
// instance of the same name makes New fail instead of being used), no
// remote client, and only this process's user may open it. The child's end
// connects before New returns, which leaves no instance for anyone else.
func New(parentReads bool, size int) (parent, child windows.Handle, err error) {
	var random [8]byte
	rand.Read(random[:])
	name := fmt.Sprintf(`\\.\pipe\netrunner-%d-%d-%s`, os.Getpid(), serial.Add(1), hex.EncodeToString(random[:]))
	return newNamed(name, parentReads, size)
}

// newNamed is New with the pipe's name given.
func newNamed(name string, parentReads bool, size int) (parent, child windows.Handle, err error) {
	if size <= 0 {
		size = DefaultSize
	}
	sa, err := ownerOnly()
	if err != nil {
		return 0, 0, err
	}
	name16, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return 0, 0, err
	}
	access, childAccess := uint32(windows.PIPE_ACCESS_OUTBOUND), uint32(windows.GENERIC_READ)
	if parentReads {
		access, childAccess = windows.PIPE_ACCESS_INBOUND, windows.GENERIC_WRITE
	}
	parent, err = windows.CreateNamedPipe(name16,
		access|windows.FILE_FLAG_OVERLAPPED|windows.FILE_FLAG_FIRST_PIPE_INSTANCE,
		windows.PIPE_TYPE_BYTE|windows.PIPE_READMODE_BYTE|windows.PIPE_WAIT|windows.PIPE_REJECT_REMOTE_CLIENTS,
		1, uint32(size), uint32(size), 0, sa)
	if err != nil {
		return 0, 0, os.NewSyscallError("CreateNamedPipe", err)
	}
	child, err = windows.CreateFile(name16, childAccess, 0, nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		windows.CloseHandle(parent)
		return 0, 0, os.NewSyscallError("CreateFile pipe", err)
	}
	if err := connect(parent); err != nil {
		windows.CloseHandle(parent)
		windows.CloseHandle(child)
		return 0, 0, err
	}
	return parent, child, nil
}

// connect completes the server's side of the connection the child's end
// made. Since that end is open, the server finds it connected at once.
func connect(server windows.Handle) error {
	ov, err := newOverlapped()
	if err != nil {
		return err
	}
	defer windows.CloseHandle(ov.HEvent &^ 1)
	err = windows.ConnectNamedPipe(server, ov)
	if err == windows.ERROR_IO_PENDING {
		var n uint32
		err = windows.GetOverlappedResult(server, ov, &n, true)
	}
	if err != nil && err != windows.ERROR_PIPE_CONNECTED {
		return os.NewSyscallError("ConnectNamedPipe", err)
	}
	return nil
}

// newOverlapped returns an OVERLAPPED whose completion sets its own event
// and is not queued to the completion port the handle may be bound to (the
// event's low bit says so): I/O made outside the runtime poller stays
// outside it.
func newOverlapped() (*windows.Overlapped, error) {
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return nil, os.NewSyscallError("CreateEvent", err)
	}
	return &windows.Overlapped{HEvent: ev | 1}, nil
}

// ownerOnly returns security attributes that let only this process's user
// open a pipe, made once. The default would let everyone read it.
var ownerOnly = sync.OnceValues(func() (*windows.SecurityAttributes, error) {
	user, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, os.NewSyscallError("GetTokenInformation", err)
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;;GA;;;" + user.User.Sid.String() + ")")
	if err != nil {
		return nil, fmt.Errorf("pipe security descriptor: %w", err)
	}
	return &windows.SecurityAttributes{
		Length:             uint32(unsafe.Sizeof(windows.SecurityAttributes{})),
		SecurityDescriptor: sd,
	}, nil
})

var (
	kernel32          = windows.NewLazySystemDLL("kernel32.dll")
	procPeekNamedPipe = kernel32.NewProc("PeekNamedPipe")
)

// Buffered returns how many bytes the pipe holds. A pipe whose other end
// is closed holds what was written before; once that is read it is broken,
// and holds 0.
func Buffered(h windows.Handle) (int, error) {
	var avail uint32
	r, _, err := procPeekNamedPipe.Call(uintptr(h), 0, 0, 0, uintptr(unsafe.Pointer(&avail)), 0)
	if r == 0 {
		if err == windows.ERROR_BROKEN_PIPE {
			return 0, nil
		}
		return 0, os.NewSyscallError("PeekNamedPipe", err)
	}
	return int(avail), nil
}

// ErrEmpty is what ReadBuffered returns when the pipe holds nothing.
var ErrEmpty = errors.New("pipe is empty")

// ReadBuffered reads what the pipe holds now, up to len(b) bytes, without
// waiting for more: ErrEmpty when it holds nothing, (0, nil) at the end of
// a broken pipe. The read is overlapped, as the handle demands, and kept
// away from the runtime poller; it must not race another read of h.
func ReadBuffered(h windows.Handle, b []byte) (int, error) {
	avail, err := Buffered(h)
	if err != nil {
		return 0, err
	}
	if avail == 0 {
		return 0, ErrEmpty
	}
	b = b[:min(len(b), avail)]
	ov, err := newOverlapped()
	if err != nil {
		return 0, err
	}
	defer windows.CloseHandle(ov.HEvent &^ 1)
	var n uint32
	err = windows.ReadFile(h, b, &n, ov)
	if err == windows.ERROR_IO_PENDING {
		// The bytes are there: this completes at once.
		err = windows.GetOverlappedResult(h, ov, &n, true)
	}
	switch err {
	case nil:
		return int(n), nil
	case windows.ERROR_BROKEN_PIPE:
		return 0, nil
	}
	return 0, os.NewSyscallError("ReadFile", err)
}
