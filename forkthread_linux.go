package netrunner

import (
	"runtime"
	"sync"
)

// A child runs before the watchdog knows it: from its fork until its group
// is registered, which spans the exec, most of a Start's time. If the
// program died then, the child would be an orphan nobody kills. So every
// child is forked with Pdeathsig (SIGKILL): the kernel kills it when the
// thread that forked it exits. In Go a thread exits only when a goroutine
// locked to it ends (golang/go#27505), so the forks run on one goroutine
// that stays locked to its thread while any child it forked is unreaped;
// then the signal comes only with the program's death. With no child left,
// the goroutine unlocks and ends, and no goroutine is kept for nothing.
// syscall.ForkLock serialises forks anyway, so one thread costs no
// parallelism.
var forkThread struct {
	mu   sync.Mutex
	live int         // children forked on the thread and not yet released
	jobs chan func() // nil while no goroutine holds the thread
}

// onForkThread runs fork on the fork thread and counts one child; the
// caller calls forkReleased once that child is reaped, or at once if the
// fork failed.
func onForkThread(fork func()) {
	forkThread.mu.Lock()
	if forkThread.jobs == nil {
		forkThread.jobs = make(chan func())
		go forkLoop(forkThread.jobs)
	}
	forkThread.live++
	jobs := forkThread.jobs
	forkThread.mu.Unlock()
	done := make(chan struct{})
	jobs <- func() {
		defer close(done)
		fork()
	}
	<-done
}

// forkReleased says a child forked on the thread is reaped (or was never
// made); the last one lets the thread go.
func forkReleased() {
	forkThread.mu.Lock()
	defer forkThread.mu.Unlock()
	if forkThread.live--; forkThread.live == 0 {
		close(forkThread.jobs)
		forkThread.jobs = nil
	}
}

func forkLoop(jobs <-chan func()) {
	runtime.LockOSThread()
	// Unlocked, the thread lives on in the runtime's pool: every child it
	// forked is reaped by now.
	defer runtime.UnlockOSThread()
	for job := range jobs {
		job()
	}
}
