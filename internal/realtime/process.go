package realtime

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ProcessPriority is the SCHED_RR priority the rest of the process runs
// at when either role asks for real-time scheduling: one below the lowest
// of the configured role priorities, at least 1 (0: neither asks, the
// process keeps the normal scheduler). keepalived sets *_rt_priority on
// the whole of the role's process; Tandem's roles share one Go process
// whose protocol threads depend on the runtime's other threads (a P to
// return from a system call, the garbage collector's stop-the-world,
// timers), so those run real-time too, above every normal-policy program,
// and each protocol thread at its own priority, above them, so that its
// wake-up preempts them rather than waits for their round-robin slice.
func ProcessPriority(roles ...int) int {
	p := 0
	for _, r := range roles {
		if r > 0 && (p == 0 || r < p) {
			p = r
		}
	}
	return max(p-1, min(p, 1))
}

// raises reports whether a thread scheduled as a must be moved to run at
// least at SCHED_RR prio: it runs under a normal policy, or real-time
// below prio. A thread at prio or above (a protocol thread) is left as it
// is.
func raises(a *unix.SchedAttr, prio int) bool {
	if a.Policy != unix.SCHED_RR && a.Policy != unix.SCHED_FIFO {
		return true
	}
	return int(a.Priority) < prio
}

// taskIDs are the thread IDs among the names of /proc/self/task.
func taskIDs(names []string) []int {
	var out []int
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil && tid > 0 {
			out = append(out, tid)
		}
	}
	return out
}

// SetProcessRR moves every thread of the process that runs below prio to
// SCHED_RR at prio, and makes sure RLIMIT_RTTIME is at least limit (0:
// DefaultRTTimeLimit). These threads do not get SCHED_RESET_ON_FORK, so
// the threads the Go runtime starts later inherit the priority from their
// creator; a thread that starts a program sets the flag for that fork
// alone (ResetOnFork). Threads started while a pass runs may be missed by
// it, so passes repeat until one changes nothing (at most a few).
func SetProcessRR(prio int, limit time.Duration) error {
	if prio <= 0 {
		return nil
	}
	for range 5 {
		changed, err := raiseThreads(prio)
		if err != nil {
			return fmt.Errorf("SCHED_RR priority %d for the process: %w", prio, hint(err, fmt.Sprintf("CAP_SYS_NICE, or an RLIMIT_RTPRIO of at least %d", prio)))
		}
		if !changed {
			break
		}
	}
	if err := raiseRTTime(limit); err != nil {
		return fmt.Errorf("RLIMIT_RTTIME: %w", err)
	}
	processRR.Store(true)
	return nil
}

// raiseThreads is one pass of SetProcessRR.
func raiseThreads(prio int) (changed bool, err error) {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return false, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return false, err
	}
	for _, tid := range taskIDs(names) {
		a, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // the thread has ended
		}
		if err != nil {
			return changed, err
		}
		if !raises(a, prio) {
			continue
		}
		err = unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_RR, Priority: uint32(prio)}, 0)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// processRR is set once SetProcessRR has moved the process.
var processRR atomic.Bool

// ResetOnFork prepares the calling thread, which must be locked to its
// goroutine, to start a program that must not inherit the process's
// real-time scheduling: once the process runs SCHED_RR (SetProcessRR), it
// sets SCHED_RESET_ON_FORK on the thread, so that the program starts
// under the normal policy at nice 0, and reports true; the caller must
// then leave its goroutine locked to the end, so that the thread ends
// with it and no thread the runtime starts from it later loses the
// process's priority. Otherwise it changes nothing and reports false.
func ResetOnFork() (bool, error) {
	if !processRR.Load() {
		return false, nil
	}
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return false, err
	}
	if a.Flags&unix.SCHED_FLAG_RESET_ON_FORK != 0 {
		return true, nil
	}
	a.Flags |= unix.SCHED_FLAG_RESET_ON_FORK
	if err := unix.SchedSetAttr(0, a, 0); err != nil {
		return false, err
	}
	return true, nil
}
