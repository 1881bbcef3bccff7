// Package watchdog keeps netrunner's promise that a Go program's children
// die with it, even when it dies by SIGKILL, on Linux.
//
// PR_SET_PDEATHSIG cannot keep that promise alone: it fires when the OS
// thread that forked the child exits, not when the process does
// (golang/go#27505), and it reaches only the child, not its descendants. (The
// root package still uses it, from a thread it keeps, to cover a child from
// its fork until it is registered here, where it cannot fork the child into
// a watched cgroup.) A subreaper dies with the program.
// Something has to outlive the program, notice its death and clean up: the
// watchdog, one small process per program.
//
// It is the program's own binary, re-executed through /proc/self/exe with
// the program's arguments and NETRUNNER_WATCHDOG=1 in its environment. This
// package's init sees the variable and turns the process into the watchdog,
// which never returns to main. The program holds the write end of a control
// pipe (O_CLOEXEC: no child inherits it); the watchdog holds the read end as
// its fd 3 and answers on a reply pipe, its fd 4. When the program dies,
// however it dies, the watchdog reads EOF, SIGKILLs every process group and
// cgroup still registered, removes the cgroups the program created, and
// exits.
//
// Readiness. Every package init of the program runs again in the watchdog
// before this package's init takes over, and an init may exit (one that
// validates its arguments or environment) or block. So the watchdog confirms
// with a byte on the reply pipe once it has taken over, and the program waits
// for that (at most ReadyTimeout) before it spawns the first child. A watchdog
// that dies or stays silent is reported by Err, with its exit status, and a
// fresh one is tried at a later Ensure, after a backoff.
//
// Trust. The environment, arguments and descriptors of a process are
// whatever its starter chose, so they prove nothing. Two rules keep anyone
// else from borrowing the watchdog:
//
//   - A program in secure-execution mode (AT_SECURE in its aux vector:
//     setuid, setgid, file capabilities, an LSM transition) never becomes
//     the watchdog; it runs its own main. Otherwise the watchdog has exactly
//     the credentials of the process that started it, so it can do nothing
//     that process could not.
//   - It acts only for its real parent: a process group is accepted only if
//     its leader is a child of that parent (the pgid is the leader's pid); a
//     cgroup only while that parent has the credentials the watchdog has
//     (ids, groups, capabilities: a parent that dropped root since cannot
//     use the watchdog's), and never one that holds the watchdog (and so the
//     parent). Both are pinned when accepted (a pidfd of the leader, a
//     descriptor of the cgroup directory), so a recycled pid or a cgroup
//     removed and made again by someone else is never hit.
//
// The children's cgroup (childcgroup_linux.go): a cgroup is registered
// before anything lives in it, so the program makes one for its children and
// forks them straight into it; they are covered from their first
// instruction, and nothing is written here per child.
//
// Protocol on the control pipe: lines of text, each written with one
// write(2). A line starting with '+' gets one reply byte, 'y' (accepted) or
// 'n' (refused), which the program reads later, in order, so that a Start
// does not wait for it (it waits for a cgroup's, before forking into it). A line read after the program died (its children are
// reparented then) is checked against the reaper that took the watchdog too.
// The first byte the watchdog sends is 'R', once it is ready.
//
//	+g PGID           watch process group PGID, led by a child of the parent
//	-g PGID           forget it
//	+c K "DIR"        watch cgroup DIR (absolute, Go-quoted); the parent
//	                  created the innermost K levels of DIR, to be removed
//	                  after the kill
//	-c "DIR"          forget it
//	x                 exit without killing anything (the watchdog is disabled)
//
// Registrations are counted: one made twice must be forgotten twice.
//
// The watchdog runs in a session of its own (a ^C for the program's terminal
// does not reach it), with /dev/null on fds 0-2 (it must not keep the
// program's stdout open for whoever reads it), ignoring SIGINT, SIGHUP,
// SIGTERM and SIGPIPE, in "/" and with the comm "netrunner-watch".
package watchdog
