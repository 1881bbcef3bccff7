package netrunner

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// endGroup ends whatever is left of process group pgid after its leader
// was reaped: SIGTERM and SIGCONT, then SIGKILL after grace (at once if
// grace < 0, or when kill is closed), and returns once no live process is
// left in it.
//
// The common case, an empty group, costs one kill(-pgid, 0). Otherwise the
// members are found in /proc and each is signalled through a pidfd opened
// before its group is checked, so a signal can only reach a process seen in
// the group. Zombies count as gone: an orphan is reparented to an init that
// may never reap it, and it holds nothing open.
//
// The number pgid stays ours while a member of the group lives: the kernel
// gives a pid out again only once no process has it as its pid, group or
// session. Once the last member is gone, a new process may get pid pgid and
// lead a new group of that number; since our leader is reaped, a live
// process with pid pgid is such a newcomer, and then the group is not ours
// any more (groupReused).
func endGroup(pgid int, grace time.Duration, kill <-chan struct{}) {
	if syscall.Kill(-pgid, 0) == syscall.ESRCH || groupReused(pgid) {
		return
	}
	if grace >= 0 && signalGroupMembers(pgid, syscall.SIGTERM) > 0 {
		// A stopped member acts on the TERM only once continued.
		signalGroupMembers(pgid, syscall.SIGCONT)
		deadline := time.NewTimer(grace)
		defer deadline.Stop()
		pollGroup(pgid, 0, deadline.C, kill)
	}
	// A process in uninterruptible sleep may take a while to die; past
	// killWait it is left to the kernel rather than holding up Wait forever.
	giveUp := time.NewTimer(killWait)
	defer giveUp.Stop()
	if signalGroupMembers(pgid, syscall.SIGKILL) > 0 {
		pollGroup(pgid, syscall.SIGKILL, giveUp.C, nil)
	}
}

const killWait = 5 * time.Second

// pollGroup returns once group pgid has no live member, or stop or hurry
// fires, sending sig to the members it finds on each look (0 only looks).
func pollGroup(pgid int, sig syscall.Signal, stop <-chan time.Time, hurry <-chan struct{}) {
	pollUntil(func() bool { return signalGroupMembers(pgid, sig) == 0 }, stop, hurry)
}

// signalGroupMembers sends sig to every live process in group pgid and
// returns how many it found.
func signalGroupMembers(pgid int, sig syscall.Signal) int {
	if groupReused(pgid) {
		return 0
	}
	dir, err := os.Open("/proc")
	if err != nil {
		// Without /proc, the group id is all there is; the leader is
		// reaped, so this is the best left.
		if syscall.Kill(-pgid, sig) == nil {
			return 1
		}
		return 0
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	found := 0
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if g, live := procGroup(pid); !live || g != pgid {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		// Checked again with the pidfd held: if pid now names another
		// process, that one is not in our group, or the signal below
		// reaches the old one, which is gone (ESRCH). A newcomer leading a
		// group of the same number has the old group's number only after
		// the old group ended.
		if g, live := procGroup(pid); live && g == pgid && !groupReused(pgid) {
			if unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
				found++
			}
		}
		unix.Close(fd)
	}
	return found
}

// groupReused reports whether a process with pid pgid exists: the reaped
// leader's number taken by a newcomer, which the kernel allows only once
// the old group is empty.
func groupReused(pgid int) bool {
	fd, err := unix.PidfdOpen(pgid, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// procGroup reads a process's group from /proc/PID/stat, and whether it is
// alive (not a zombie).
func procGroup(pid int) (pgid int, live bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold anything, even ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 {
		return 0, false
	}
	pgid, _ = strconv.Atoi(string(f[2]))
	return pgid, f[0][0] != 'Z' && f[0][0] != 'X'
}
