package netrunner

import (
	"runtime"
	"slices"
	"sync"
	"time"
)

// Where a child cannot be forked into a cgroup the watchdog watches (see
// spawn), it runs before the watchdog knows it: from its fork until its group
// is registered, which spans the exec, most of a Start's time. If the
// program died then, the child would be an orphan nobody kills. So such a
// child is forked with Pdeathsig (SIGKILL): the kernel kills it when the
// thread that forked it exits. In Go a thread exits only when a goroutine
// locked to it ends (golang/go#27505), so the forks run on fork threads:
// goroutines that stay locked to their thread while any child they forked
// is unreaped; then the signal comes only with the program's death. Once a
// fork thread has had no child for lingerIdle, its goroutine unlocks and
// ends, and no goroutine is kept for nothing; until then, processes started
// one after the other reuse it rather than each start a goroutine and lock
// a thread.
//
// syscall.ForkLock serialises the forks themselves, but a fork thread also
// registers each child with the watchdog, which wakes the watchdog, and
// hands the result back; measured with 8 Runs at once on 2 cores, one
// thread for all made them queue there. So up to maxForkThreads exist: a
// fork goes to one that is not forking, while there is one.
var forkThreads struct {
	mu  sync.Mutex
	all []*forkThread
}

// maxForkThreads bounds the threads kept locked for forks.
const maxForkThreads = 4

// A forkThread is one goroutine locked to its thread, and its children.
type forkThread struct {
	jobs chan func()
	live int         // children forked here and not yet released; under forkThreads.mu
	busy int         // forks sent here and not yet done; under forkThreads.mu
	idle *time.Timer // lets the thread go after lingerIdle without a child
}

// onForkThread runs fork on a fork thread and counts one child there; the
// caller calls released on the thread returned once that child is reaped,
// or at once if the fork failed.
func onForkThread(fork func()) *forkThread {
	ft := &forkThreads
	ft.mu.Lock()
	t := pickForkThread()
	t.busy++
	if t.live++; t.live == 1 && t.idle != nil {
		t.idle.Stop()
	}
	ft.mu.Unlock()
	done := make(chan struct{})
	t.jobs <- func() {
		defer close(done)
		fork()
	}
	<-done
	ft.mu.Lock()
	t.busy--
	ft.mu.Unlock()
	return t
}

// pickForkThread returns a thread that is not forking, a new one while
// there are fewer than maxForkThreads, or else the least busy.
func pickForkThread() *forkThread {
	ft := &forkThreads
	var least *forkThread
	for _, t := range ft.all {
		if t.busy == 0 {
			return t
		}
		if least == nil || t.busy < least.busy {
			least = t
		}
	}
	if least != nil && len(ft.all) >= maxForkThreads {
		return least
	}
	t := &forkThread{jobs: make(chan func())}
	ft.all = append(ft.all, t)
	go forkLoop(t.jobs)
	return t
}

// released says a child forked on t is reaped (or was never made);
// lingerIdle after its last one, the thread goes.
func (t *forkThread) released() {
	ft := &forkThreads
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if t.live--; t.live > 0 {
		return
	}
	if t.idle == nil {
		t.idle = time.AfterFunc(lingerIdle, t.end)
	} else {
		t.idle.Reset(lingerIdle)
	}
}

// end lets the thread go if no child came since the last one was released.
func (t *forkThread) end() {
	ft := &forkThreads
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if i := slices.Index(ft.all, t); i >= 0 && t.live == 0 {
		ft.all = slices.Delete(ft.all, i, i+1)
		close(t.jobs)
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
