package netrunner

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// notFoundError reports a program that could not be executed because it,
// or the interpreter it names, does not exist. It matches exec.ErrNotFound
// and fs.ErrNotExist, but its message speaks of $PATH only when a PATH
// search happened (that error comes from exec.LookPath instead).
type notFoundError struct {
	path         string
	interp, kind string // the missing interpreter, if that is what is missing
}

func (e *notFoundError) Error() string {
	if e.interp != "" {
		return fmt.Sprintf("%s: %s %q: no such file or directory", e.path, e.kind, e.interp)
	}
	return e.path + ": no such file or directory"
}

func (e *notFoundError) Unwrap() []error { return []error{exec.ErrNotFound, syscall.ENOENT} }

// notFound explains an ENOENT from execve of path, started in dir: the file
// is missing, or the interpreter its "#!" line or ELF header names.
func notFound(name, path, dir string) error {
	interp, kind := missingInterpreter(path, dir, 0)
	return commandError(name, "start", &notFoundError{path, interp, kind})
}

// missingInterpreter returns the interpreter that the file at path names,
// and what kind it is, if that interpreter does not exist (depth counts the
// "#!" levels followed so far). Relative paths
// are taken from dir, as the child resolves them after changing into it.
func missingInterpreter(path, dir string, depth int) (interp, kind string) {
	// Nonblocking, and only a regular file: a FIFO put in its place must
	// not hang the error path.
	f, err := os.OpenFile(inDir(dir, path), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", ""
	}
	// The kernel reads at most this much of a "#!" line (BINPRM_BUF_SIZE).
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		// As the kernel parses it: blanks skipped, then the name up to a
		// blank or NUL. Anything else, a '\r' of a CRLF line, is part of it.
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		line = bytes.TrimLeft(line, " \t")
		if i := bytes.IndexAny(line, " \t\x00"); i >= 0 {
			line = line[:i]
		}
		if len(line) == 0 {
			return "", ""
		}
		interp, kind = string(line), "interpreter"
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		interp, kind = elfInterpreter(f), "ELF interpreter"
	}
	if interp == "" {
		return "", ""
	}
	if _, err := os.Stat(inDir(dir, interp)); !errors.Is(err, fs.ErrNotExist) {
		// It exists, but may be a script whose own interpreter is missing
		// (the kernel follows at most a few such levels).
		if depth < maxInterpreterDepth {
			return missingInterpreter(interp, dir, depth+1)
		}
		return "", ""
	}
	return interp, kind
}

// maxInterpreterDepth is how many "#!" levels the kernel follows.
const maxInterpreterDepth = 4

// elfInterpreter returns the dynamic loader an ELF file asks for, or "".
func elfInterpreter(r io.ReaderAt) string {
	ef, err := elf.NewFile(r)
	if err != nil {
		return ""
	}
	defer ef.Close()
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP || prog.Filesz > 4096 {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return ""
		}
		return string(bytes.TrimRight(b, "\x00"))
	}
	return ""
}

func inDir(dir, path string) string {
	if dir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
