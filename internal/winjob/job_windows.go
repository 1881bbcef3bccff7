package winjob

import (
	"errors"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/windows"
)

// A Process is a started program and its job.
type Process struct {
	Pid     int
	process windows.Handle
	job     windows.Handle

	closeOnce sync.Once
}

// Attr says how to start a program.
type Attr struct {
	Path  string            // the executable, as found by exec.LookPath
	Args  []string          // quoted by Windows rules into the command line
	Env   []string          // KEY=VALUE entries; a later one replaces an earlier one of the same name
	Dir   string            // "": the parent's working directory
	Stdio [3]windows.Handle // stdin, stdout, stderr; inherited by the child alone
}

// ExitKilled is the exit code of a process ended by Terminate, as os/exec
// uses for Process.Kill.
const ExitKilled = 1

// Start starts the program in a new job object, in a console process group
// of its own (CREATE_NEW_PROCESS_GROUP, so a CTRL_BREAK can be sent to it
// alone). The program is created suspended and runs its first instruction
// only once it is in the job, so nothing it starts can escape. It inherits
// the three Stdio handles and no other, whatever else is inheritable in
// this process (PROC_THREAD_ATTRIBUTE_HANDLE_LIST, as os/exec does).
func Start(a *Attr) (*Process, error) {
	job, err := newJob()
	if err != nil {
		return nil, err
	}
	pi, err := create(a)
	if err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	defer windows.CloseHandle(pi.Thread)
	if err := windows.AssignProcessToJobObject(job, pi.Process); err != nil {
		windows.TerminateProcess(pi.Process, ExitKilled)
		windows.CloseHandle(pi.Process)
		windows.CloseHandle(job)
		return nil, os.NewSyscallError("AssignProcessToJobObject", err)
	}
	if _, err := windows.ResumeThread(pi.Thread); err != nil {
		windows.TerminateJobObject(job, ExitKilled)
		windows.CloseHandle(pi.Process)
		windows.CloseHandle(job) // kills on close, should the terminate have failed
		return nil, os.NewSyscallError("ResumeThread", err)
	}
	return &Process{Pid: int(pi.ProcessId), process: pi.Process, job: job}, nil
}

// newJob makes a job that kills its processes when its last handle closes.
// The handle is not inheritable: only this process holds it.
func newJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, os.NewSyscallError("CreateJobObject", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return 0, os.NewSyscallError("SetInformationJobObject", err)
	}
	return job, nil
}

// create creates the process, suspended.
func create(a *Attr) (*windows.ProcessInformation, error) {
	path, err := windows.UTF16PtrFromString(a.Path)
	if err != nil {
		return nil, err
	}
	cmdline, err := windows.UTF16PtrFromString(windows.ComposeCommandLine(a.Args))
	if err != nil {
		return nil, err
	}
	var dir *uint16
	if a.Dir != "" {
		if dir, err = windows.UTF16PtrFromString(a.Dir); err != nil {
			return nil, err
		}
	}
	env := envBlock(a.Env)

	// The child's copies of its standard handles, inheritable, made for
	// this spawn and closed after it.
	self := windows.CurrentProcess()
	var std [3]windows.Handle
	var inherit []windows.Handle
	defer func() {
		for _, h := range inherit {
			windows.CloseHandle(h)
		}
	}()
	for i, h := range a.Stdio {
		if h == 0 || h == windows.InvalidHandle {
			continue // none: a program without a console may have no stderr
		}
		if err := windows.DuplicateHandle(self, h, self, &std[i], 0, true, windows.DUPLICATE_SAME_ACCESS); err != nil {
			return nil, os.NewSyscallError("DuplicateHandle", err)
		}
		inherit = append(inherit, std[i])
	}

	si := &windows.StartupInfoEx{}
	si.Cb = uint32(unsafe.Sizeof(*si))
	si.Flags = windows.STARTF_USESTDHANDLES
	si.StdInput, si.StdOutput, si.StdErr = std[0], std[1], std[2]
	if len(inherit) > 0 {
		attrs, err := windows.NewProcThreadAttributeList(1)
		if err != nil {
			return nil, os.NewSyscallError("InitializeProcThreadAttributeList", err)
		}
		defer attrs.Delete()
		if err := attrs.Update(windows.PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
			unsafe.Pointer(&inherit[0]), uintptr(len(inherit))*unsafe.Sizeof(inherit[0])); err != nil {
			return nil, os.NewSyscallError("UpdateProcThreadAttribute", err)
		}
		si.ProcThreadAttributeList = attrs.List()
	}
	flags := uint32(windows.CREATE_UNICODE_ENVIRONMENT | windows.EXTENDED_STARTUPINFO_PRESENT |
		windows.CREATE_SUSPENDED | windows.CREATE_NEW_PROCESS_GROUP)
	pi := &windows.ProcessInformation{}
	err = windows.CreateProcess(path, cmdline, nil, nil, len(inherit) > 0, flags, env, dir, &si.StartupInfo, pi)
	if err != nil {
		if err == windows.ERROR_FILE_NOT_FOUND || err == windows.ERROR_PATH_NOT_FOUND {
			return nil, ErrNotFound
		}
		return nil, os.NewSyscallError("CreateProcess", err)
	}
	return pi, nil
}

// ErrNotFound is Start's error when the program does not exist.
var ErrNotFound = errors.New("program not found")

// envBlock makes the environment block CreateProcess takes: each entry
// ends with a NUL, and the block with another. As with os/exec, a later
// entry replaces an earlier one of the same name, compared without regard
// to case as Windows does (Windows itself would keep the first), and
// SYSTEMROOT is added from this process's environment when env lacks it:
// without it, much of Windows fails in the child (sockets, for one).
func envBlock(env []string) *uint16 {
	last := make(map[string]int, len(env))
	for i, kv := range env {
		last[envKey(kv)] = i
	}
	if _, ok := last["SYSTEMROOT"]; !ok {
		if root, ok := os.LookupEnv("SYSTEMROOT"); ok {
			env = append(env[:len(env):len(env)], "SYSTEMROOT="+root)
			last["SYSTEMROOT"] = len(env) - 1
		}
	}
	var block []uint16
	for i, kv := range env {
		if last[envKey(kv)] == i {
			block = append(append(block, utf16.Encode([]rune(kv))...), 0)
		}
	}
	if len(block) == 0 {
		block = append(block, 0)
	}
	block = append(block, 0)
	return &block[0]
}

// envKey is the name of an environment entry, upper-cased. Its first
// character belongs to the name even when it is "=": Windows keeps each
// drive's directory so ("=C:=C:\dir").
func envKey(kv string) string {
	k, _, _ := strings.Cut(kv[min(1, len(kv)):], "=")
	return strings.ToUpper(kv[:min(1, len(kv))] + k)
}

// Wait blocks the calling thread until the program has exited.
func (p *Process) Wait() error {
	ev, err := windows.WaitForSingleObject(p.process, windows.INFINITE)
	if err != nil {
		return os.NewSyscallError("WaitForSingleObject", err)
	}
	if ev != windows.WAIT_OBJECT_0 {
		return os.NewSyscallError("WaitForSingleObject", windows.Errno(ev))
	}
	return nil
}

// Exited reports whether the program has exited.
func (p *Process) Exited() bool {
	ev, err := windows.WaitForSingleObject(p.process, 0)
	return err == nil && ev == windows.WAIT_OBJECT_0
}

// ExitCode returns the exited program's exit code.
func (p *Process) ExitCode() (uint32, error) {
	var code uint32
	if err := windows.GetExitCodeProcess(p.process, &code); err != nil {
		return 0, os.NewSyscallError("GetExitCodeProcess", err)
	}
	return code, nil
}

// Times returns the CPU time the program spent in user and kernel mode.
func (p *Process) Times() (user, system time.Duration, err error) {
	var created, exited, kernel, usr windows.Filetime
	if err := windows.GetProcessTimes(p.process, &created, &exited, &kernel, &usr); err != nil {
		return 0, 0, os.NewSyscallError("GetProcessTimes", err)
	}
	return filetime(usr), filetime(kernel), nil
}

// filetime converts a FILETIME duration, in 100 ns units.
func filetime(ft windows.Filetime) time.Duration {
	return time.Duration(int64(ft.HighDateTime)<<32|int64(ft.LowDateTime)) * 100
}

var (
	kernel32                  = windows.NewLazySystemDLL("kernel32.dll")
	procGetProcessMemoryInfo  = kernel32.NewProc("K32GetProcessMemoryInfo")
	errNoProcessMemoryCounter = errors.New("K32GetProcessMemoryInfo failed")
)

// processMemoryCounters is PROCESS_MEMORY_COUNTERS.
type processMemoryCounters struct {
	cb                         uint32
	pageFaultCount             uint32
	peakWorkingSetSize         uintptr
	workingSetSize             uintptr
	quotaPeakPagedPoolUsage    uintptr
	quotaPagedPoolUsage        uintptr
	quotaPeakNonPagedPoolUsage uintptr
	quotaNonPagedPoolUsage     uintptr
	pagefileUsage              uintptr
	peakPagefileUsage          uintptr
}

// PeakWorkingSet returns the most physical memory the program used, in
// bytes.
func (p *Process) PeakWorkingSet() (int64, error) {
	var pmc processMemoryCounters
	pmc.cb = uint32(unsafe.Sizeof(pmc))
	if r, _, err := procGetProcessMemoryInfo.Call(uintptr(p.process), uintptr(unsafe.Pointer(&pmc)), uintptr(pmc.cb)); r == 0 {
		if err == nil {
			err = errNoProcessMemoryCounter
		}
		return 0, os.NewSyscallError("GetProcessMemoryInfo", err)
	}
	return int64(pmc.peakWorkingSetSize), nil
}

// Terminate ends every process in the job at once, with exit code
// ExitKilled.
func (p *Process) Terminate() error {
	return os.NewSyscallError("TerminateJobObject", windows.TerminateJobObject(p.job, ExitKilled))
}

// Break sends CTRL_BREAK_EVENT to the program's console process group: a
// console program's default handler exits, one that handles it may exit
// cleanly. It needs a console that both processes share.
func (p *Process) Break() error {
	return os.NewSyscallError("GenerateConsoleCtrlEvent", windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid)))
}

// basicAccounting is JOBOBJECT_BASIC_ACCOUNTING_INFORMATION.
type basicAccounting struct {
	totalUserTime, totalKernelTime                     int64
	thisPeriodTotalUserTime, thisPeriodTotalKernelTime int64
	totalPageFaultCount                                uint32
	totalProcesses, activeProcesses, totalTerminated   uint32
}

// Active returns how many processes in the job are still running.
func (p *Process) Active() (int, error) {
	var info basicAccounting
	if err := windows.QueryInformationJobObject(p.job, windows.JobObjectBasicAccountingInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil); err != nil {
		return 0, os.NewSyscallError("QueryInformationJobObject", err)
	}
	return int(info.activeProcesses), nil
}

// Close closes the process and job handles, once: the job kills whatever
// is left in it.
func (p *Process) Close() {
	p.closeOnce.Do(func() {
		windows.CloseHandle(p.job)
		windows.CloseHandle(p.process)
	})
}
