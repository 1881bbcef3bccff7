//go:build linux

package watchdog

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// launchable reports why the watchdog cannot be this program re-executed
// from /proc/self/exe, for good: in a c-shared, c-archive or plugin build,
// and when the program was started through the dynamic loader (ld.so
// prog), /proc/self/exe is the host program or the loader, which would be run
// with the program's arguments. Without /proc nothing can be checked.
func launchable() error {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-buildmode" && (s.Value == "c-shared" || s.Value == "c-archive" || s.Value == "plugin") {
				return fmt.Errorf("no watchdog in a -buildmode=%s program (/proc/self/exe is the host program): children are not killed when the program dies", s.Value)
			}
		}
	}
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return fmt.Errorf("cannot start the watchdog: /proc is not mounted (%w); children are not killed when the program dies", &os.PathError{Op: "stat", Path: "/proc/self/exe", Err: err})
	}
	dev, ino, err := codeFile()
	if err != nil {
		return fmt.Errorf("cannot start the watchdog: %w; children are not killed when the program dies", err)
	}
	if uint64(exe.Dev) != dev || uint64(exe.Ino) != ino {
		return errors.New("no watchdog: /proc/self/exe is not the file this code was loaded from (started through the dynamic loader, or loaded into another program); children are not killed when the program dies")
	}
	return nil
}

// codeFile finds the device and inode of the file mapped where this
// package's code is, from /proc/self/maps.
func codeFile() (dev, ino uint64, err error) {
	pc := uint64(reflect.ValueOf(launchable).Pointer())
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset major:minor inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || pc < start || pc >= end {
			continue
		}
		major, minor, _ := strings.Cut(fields[3], ":")
		maj, err1 := strconv.ParseUint(major, 16, 32)
		mnr, err2 := strconv.ParseUint(minor, 16, 32)
		ino, err3 := strconv.ParseUint(fields[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, 0, fmt.Errorf("/proc/self/maps: %q: %w", sc.Text(), err)
		}
		return unix.Mkdev(uint32(maj), uint32(mnr)), ino, nil
	}
	return 0, 0, fmt.Errorf("/proc/self/maps: no mapping holds the program's code (%v)", sc.Err())
}
