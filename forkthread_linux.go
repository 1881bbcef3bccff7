package netrunner

import (
	"runtime"
	"sync"
	"time"
)

// A child runs before the watchdog knows it: from its fork until its group
// is registered, which spans the exec, most of a Start's time. If the
// program died then, the child would be an orphan nobody kills. So every
// child is forked with Pdeathsig (SIGKILL): the kernel kills it when the
// thread that forked it exits. In Go a thread exits only when a goroutine
// locked to it ends (golang/go#27505), so the forks run on one goroutine
// that stays locked to its thread while any child it forked is unreaped;
// then the signal comes only with the program's death. Once no child has
// been left for lingerIdle, the goroutine unlocks and ends, and no goroutine
// is kept for nothing; until then, processes started one after the other
// reuse it rather than each start a goroutine and lock a thread.
// syscall.ForkLock serialises forks anyway, so one thread costs no
// parallelism.
var forkThread struct {
	mu   sync.Mutex
	live int         // children forked on the thread and not yet released
	jobs chan func() // nil while no goroutine holds the thread
	idle *time.Timer // lets the thread go after lingerIdle without a child
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
	if forkThread.live++; forkThread.live == 1 && forkThread.idle != nil {
		forkThread.idle.Stop()
	}
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
// made); lingerIdle after the last one, the thread goes.
func forkReleased() {
	forkThread.mu.Lock()
	defer forkThread.mu.Unlock()
	if forkThread.live--; forkThread.live > 0 {
		return
	}
	if forkThread.idle == nil {
		forkThread.idle = time.AfterFunc(lingerIdle, endForkThread)
	} else {
		forkThread.idle.Reset(lingerIdle)
	}
}

// endForkThread lets the fork thread go if no child came since the last
// one was released.
func endForkThread() {
	forkThread.mu.Lock()
	defer forkThread.mu.Unlock()
	if forkThread.live == 0 && forkThread.jobs != nil {
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
