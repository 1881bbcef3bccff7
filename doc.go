// Package netrunner runs external programs and streams their I/O with real
// backpressure: a consumer that stops reading makes the child block in
// write(2), instead of the program's memory filling up.
//
// The parent's ends of a child's pipes are nonblocking descriptors on the Go
// runtime's poller, and a [Stream] reads only on demand: [Stream.Next] reads
// one chunk when called, [Stream.Request] grants credit for chunks read ahead
// onto [Stream.C]. Data nobody asked for stays in the kernel pipe, so memory
// is bounded by the outstanding demand times [Cmd.ChunkSize].
//
// # Running commands
//
// [Command] returns a [Cmd], configured like an exec.Cmd. One-shot calls run
// it to the end: [Cmd.Output] returns stdout, [Cmd.Run] a [Result] with the
// stderr tail, exit code and [Stats]; [Cmd.Chunks] and [Cmd.Lines] range over
// stdout as it arrives. [Cmd.Start] returns a running [Process], to write to
// ([Process.Write], [Process.CloseStdin]), read from ([Process].Stdout), signal
// and wait for.
//
// Every method takes a context, which governs the process's life: when it
// ends, the process group gets SIGTERM, then SIGKILL after [Cmd.KillTimeout],
// and the process is reaped; the error then matches the context's error.
//
// # Processes and their descendants
//
// Each child leads a process group of its own, so [Process.Signal],
// [Process.Stop], [Process.Kill] and cancellation reach everything it started.
// When the child exits, whatever is left in its group gets SIGTERM, then
// SIGKILL after KillTimeout, so no read or Wait hangs on a pipe that a
// leftover descendant holds open. On Linux the child is held by a pidfd and
// reaped through it, so no signal can reach a process that reused its pid.
//
// If the Go program dies, even by SIGKILL, its children die with it, on
// Linux: the first Start launches one small watchdog process (the program's
// own binary, re-executed from /proc/self/exe with the program's arguments
// and diverted into the watchdog by this package's init, before main), waits
// until it confirms it is ready, and has it watch a cgroup made for the
// program's children before forking the first one into it (or, without
// cgroup v2 write access, registers each child's process group). When the
// program dies, the watchdog kills them all and removes the cgroups the
// package created. The program's package initialisers run once
// more in the watchdog, so they should be free of side effects. A setuid or
// setcap program never becomes the watchdog. [WatchdogErr] says whether the
// children are protected; [DisableWatchdog] opts out.
//
// # Standard error
//
// [Cmd.Stderr] chooses among [StderrTail] (the default: drained in the
// background, the last 64 KiB kept for [ExitError] and [Result]),
// [StderrStream] (a Stream of its own in [Process].Stderr), [StderrToStdout],
// [StderrDiscard] and [StderrInherit].
//
// # Terminals
//
// With [Cmd.PTY] set (Linux), the child runs as a session leader on a new
// pseudo-terminal of that size: stdin, stdout and stderr are the terminal,
// [Process].Stdout reads it, [Process.Write] types into it, [Process.Resize]
// changes its size, and [Process.CloseStdin] types the end-of-file character.
// Run, Output, Chunks and Lines type it themselves once [Cmd.Stdin], if any,
// is used up, as they close a pipe: a child reading the terminal sees the
// end of its input. The character is typed once, when a process on the
// terminal waits for input with canonical mode on. A terminal in
// non-canonical mode (stty raw, or -icanon, as editors and shells set it)
// has no end-of-file, so a child that turns canonical mode off ends only
// when it exits by itself or the context ends.
//
// Ctrl-C at a terminal sends SIGINT to the terminal's foreground process
// group: the program's, not its children's, which run in process groups of
// their own (that is what lets Stop and cancellation reach a child's
// descendants). So the children do not see Ctrl-C. To stop them on it, end
// the context with it, ctx, stop := signal.NotifyContext(ctx, os.Interrupt),
// and they are stopped gracefully (SIGTERM, SIGCONT, SIGKILL after
// KillTimeout); left to Go's default, SIGINT ends the program and the
// watchdog kills the children. One exception: a child whose Cmd.Stdin is the
// program's controlling terminal runs in the terminal's foreground, as a
// shell runs a job, so that it can read it (a background group that reads
// its terminal is stopped by SIGTTIN); Ctrl-C and Ctrl-Z then reach that
// child and not the program, and the terminal returns to the program when
// the child is reaped. A child stopped with Ctrl-Z keeps the terminal while
// stopped, and a Ctrl-C then goes to it, stopped, not to the program, so
// only the context ends it: give such a run a context with a deadline, or
// one that the program's signal handling ends (SIGTERM or SIGHUP, say, with
// signal.NotifyContext; the terminal's keys reach only the child). One
// child at a time can have the terminal; another, or any while the program
// itself is in the background, is refused with [ErrInvalidCommand].
//
// # Cgroups
//
// With [Cmd.Cgroup] set (Linux, cgroup v2), the child starts inside that
// group, created if missing under the cgroup2 mount found in
// /proc/self/mountinfo, with [Cmd.CgroupSettings] written first. The child
// enters the group atomically (clone3 with CLONE_INTO_CGROUP), except where
// the kernel would kill it for that (a group killed before, on kernels that
// compare kill counts at the fork): then it is moved in right after its
// fork. When the
// process ends, everything left in the group is killed, including processes
// that left the process group with setsid, and a group that was created is
// removed. Give each process a group of its own: the end of one process kills
// everything in its group.
//
// # Daemons and pipelines
//
// A [Daemon] supervises a long-running command, restarting it with backoff
// and logging its output through log/slog; its Run blocks until its context
// ends, so daemons compose with errgroup. [Pipeline] connects commands like a
// shell's a | b | c, through kernel pipes that the Go process never reads.
//
// # Remote hosts
//
// With [Cmd.Host] set to [SSH](client), a command runs on an OpenSSH server
// with the same types and guarantees: arguments byte for byte, backpressure
// end to end, the remote process group stopped and killed with the
// command, and when the connection ends. See [SSH] for what holds and what
// differs.
//
// # Platforms
//
// Linux is where netrunner is tested, on amd64 and, as a 32-bit program, on
// 386; it builds for arm, arm64 and riscv64 too. On darwin, FreeBSD, OpenBSD
// and NetBSD the package builds and works through the same POSIX calls
// (pipes, process groups, kill, wait4), untested: PTY, Cgroup and PipeSize
// return errors wrapping [ErrUnsupported], processes are reaped by a
// blocking wait4 instead of through a pidfd, and there is no parent-death
// watchdog. On windows, tested under Wine 8 but not yet on real Windows,
// the parent's pipe ends are overlapped named pipes on the runtime poller
// and each child runs in a job object of its own that stands for its
// process group and dies with the program (WatchdogErr is nil there); Stop
// sends CTRL_BREAK_EVENT before terminating the job, Signal takes SIGINT,
// SIGKILL and 0, and PTY, Cgroup and PipeSize return errors wrapping
// ErrUnsupported. ErrUnsupported also satisfies errors.Is(err, errors.ErrUnsupported).
package netrunner
