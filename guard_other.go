//go:build !linux

package netrunner

// The parent-death guard is Linux only (see guard_linux.go). Elsewhere these
// are no-ops: children are not killed when the program itself dies.

// guardWatch tells the guard about a new process group (no-op here).
func guardWatch(pgid int) {}

// guardForget tells the guard the group is gone (no-op here).
func guardForget(pgid int) {}

// guardWatchCgroup tells the guard about a cgroup directory (no-op here).
func guardWatchCgroup(dir string) {}

// guardForgetCgroup tells the guard the cgroup is gone (no-op here).
func guardForgetCgroup(dir string) {}

// guardPid returns the pid of the guard process: always 0 here.
func guardPid() int { return 0 }

// guardErr reports why children are unprotected; there is no guard here to
// fail, so it is nil.
func guardErr() error { return nil }
