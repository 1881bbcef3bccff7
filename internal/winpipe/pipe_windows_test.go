package winpipe

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

func write(t *testing.T, h windows.Handle, b []byte) {
	t.Helper()
	var n uint32
	if err := windows.WriteFile(h, b, &n, nil); err != nil || int(n) != len(b) {
		t.Fatalf("WriteFile: %d, %v", n, err)
	}
}

// The parent's end is on the poller: a read waits for the child's write,
// a deadline ends a parked read, and the pipe is usable after it.
func TestParentReadsOnPoller(t *testing.T) {
	parent, child, err := New(true, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(parent), "stdout")
	defer f.Close()
	f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 100)
	if n, err := f.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read of an empty pipe: %d, %v; want the deadline", n, err)
	}
	f.SetReadDeadline(time.Time{})
	write(t, child, []byte("hello"))
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read: %q, %v", buf[:n], err)
	}
	write(t, child, []byte("left"))
	windows.CloseHandle(child)
	if n, err := Buffered(parent); err != nil || n != 4 {
		t.Fatalf("Buffered after the writer closed: %d, %v; want 4", n, err)
	}
	if n, err := ReadBuffered(parent, buf); err != nil || string(buf[:n]) != "left" {
		t.Fatalf("ReadBuffered: %q, %v", buf[:n], err)
	}
	if n, err := Buffered(parent); err != nil || n != 0 {
		t.Fatalf("Buffered of the drained broken pipe: %d, %v", n, err)
	}
	if n, err := f.Read(buf); err != io.EOF {
		t.Fatalf("read at the end: %d, %v; want EOF", n, err)
	}
}

// ReadBuffered does not wait: an empty pipe with a live writer is ErrEmpty.
func TestReadBufferedEmpty(t *testing.T) {
	parent, child, err := New(true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(parent)
	defer windows.CloseHandle(child)
	if n, err := ReadBuffered(parent, make([]byte, 10)); err != ErrEmpty {
		t.Fatalf("ReadBuffered of an empty pipe: %d, %v; want ErrEmpty", n, err)
	}
	write(t, child, []byte("abcdef"))
	buf := make([]byte, 4)
	if n, err := ReadBuffered(parent, buf); err != nil || string(buf[:n]) != "abcd" {
		t.Fatalf("ReadBuffered: %q, %v", buf[:n], err)
	}
}

// A writer on the parent's end blocks once the buffer is full, and a
// write deadline ends the wait; what fits was taken.
func TestParentWriteBlocksWhenFull(t *testing.T) {
	parent, child, err := New(false, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(child)
	f := os.NewFile(uintptr(parent), "stdin")
	defer f.Close()
	f.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	big := bytes.Repeat([]byte("x"), 1<<20)
	n, err := f.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write of 1 MiB into a 4 KiB pipe nobody reads: %d, %v; want the deadline", n, err)
	}
	if n >= len(big) {
		t.Fatalf("wrote %d bytes", n)
	}
}

// The pipe admits one instance, taken by the child's end: nobody else can
// connect to the name, and a name in use cannot be taken over.
func TestOneClient(t *testing.T) {
	name := `\\.\pipe\netrunner-test-` + t.Name()
	parent, child, err := newNamed(name, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(parent)
	defer windows.CloseHandle(child)
	p16, _ := windows.UTF16PtrFromString(name)
	if h, err := windows.CreateFile(p16, windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING, 0, 0); err == nil {
		windows.CloseHandle(h)
		t.Errorf("a second client opened %s", name)
	}
	if p, c, err := newNamed(name, true, 0); err == nil {
		windows.CloseHandle(p)
		windows.CloseHandle(c)
		t.Errorf("a second pipe was made under the name %s", name)
	}
}
