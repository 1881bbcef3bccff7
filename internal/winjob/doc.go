// Package winjob starts a program on Windows inside a job object of its
// own, the Windows counterpart of a process group that cannot be left: the
// program and every process it starts belong to the job, terminating the
// job ends them all, and the job is made to kill them when its last handle
// closes. Only the starting process holds that handle, so its death, even
// by TerminateProcess, ends the job: no watchdog process is needed.
//
// Windows only; the package is empty elsewhere.
package winjob
