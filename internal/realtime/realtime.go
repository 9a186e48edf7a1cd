// Package realtime schedules the threads that keep a protocol's time: the
// VRRP engine's loop and the BFD engine's. keepalived runs each role in a
// process of its own and sets the process's scheduling (keepalived.conf(5)
// vrrp_rt_priority, vrrp_priority, vrrp_cpu_affinity, vrrp_rlimit_rttime,
// vrrp_no_swap and their bfd_ twins; lib/process.c
// set_process_priorities); Tandem is one process, so each role sets them
// on the one OS thread its loop is locked to (runtime.LockOSThread), and
// a real-time priority also moves the rest of the process to SCHED_RR at
// the lowest priority asked for (SetProcessRR): a protocol thread alone at
// real-time priority still waits on the Go runtime's other threads (a P
// to return from a system call, the garbage collector, timers), which CPU
// hogs at the normal policy starve. Programs Tandem starts do not inherit
// it (ResetOnFork). Memory locking is process-wide too: mlockall(2), so
// either role's no_swap locks all of Tandem.
package realtime

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRTTimeLimit is Tandem's default *_rlimit_rttime: the CPU time a
// real-time thread may use without blocking before the kernel kills the
// process. keepalived's default, 10 ms, suits its single-threaded event
// loops, which block in epoll between events; Tandem's whole process runs
// real-time (SetProcessRR), and a Go runtime thread may run longer than
// that without a blocking system call (a garbage collection mark worker
// over a large heap, a reload parsing a large configuration, a thread
// running goroutine after goroutine), and a director killed for it is
// the outage real-time scheduling is meant to prevent. A second still
// stops a runaway thread; SIGXCPU at half of it is logged.
const DefaultRTTimeLimit = time.Second

// Thread is how a protocol thread is scheduled.
type Thread struct {
	// Priority is the SCHED_RR priority (1..99); 0 keeps the normal
	// scheduler (keepalived *_rt_priority).
	Priority int
	// Nice is the thread's nice value (-20..19), used only when Priority
	// is 0, as keepalived uses *_priority only without *_rt_priority.
	Nice int
	// CPUs the thread may run on; empty: any (keepalived *_cpu_affinity).
	CPUs []int
	// RTTimeLimit is RLIMIT_RTTIME's hard limit, set with a real-time
	// priority (its soft limit is half of it, as keepalived sets it);
	// 0: DefaultRTTimeLimit. The limit is the process's, and lowering its
	// hard limit cannot be undone without CAP_SYS_RESOURCE: the first
	// limit set stays unless a later one is larger and may be set, so
	// that no role's thread is held to another's shorter limit where
	// that can be helped.
	RTTimeLimit time.Duration
}

// Apply sets t on the calling thread, which must be locked to its
// goroutine (runtime.LockOSThread) and must not be unlocked afterwards:
// a thread changed here should end with its goroutine. What cannot be set
// (no CAP_SYS_NICE, no RLIMIT_RTPRIO) is returned, joined, and the rest is
// set all the same.
func Apply(t Thread) error {
	var errs []error
	if len(t.CPUs) > 0 {
		var set unix.CPUSet
		for _, c := range t.CPUs {
			set.Set(c)
		}
		// pid 0 is the calling thread (sched_setaffinity(2)).
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errs = append(errs, fmt.Errorf("cpu affinity %v: %w", t.CPUs, err))
		}
	}
	switch {
	case t.Priority > 0:
		if err := SetRR(t.Priority, t.RTTimeLimit); err != nil {
			errs = append(errs, err)
		}
	case t.Nice != 0:
		// On Linux, PRIO_PROCESS with a thread ID sets that thread's nice
		// value alone (setpriority(2), BUGS).
		if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), t.Nice); err != nil {
			errs = append(errs, fmt.Errorf("nice %d: %w", t.Nice, hint(err, "CAP_SYS_NICE, or an RLIMIT_NICE allowing it")))
		}
	}
	return errors.Join(errs...)
}

// SetRR moves the calling thread to SCHED_RR at prio, with
// SCHED_RESET_ON_FORK so that threads and scripts started from it are not
// real-time, and makes sure RLIMIT_RTTIME is at least limit (0:
// DefaultRTTimeLimit): a real-time thread that spins without blocking for
// that long gets the process killed rather than the machine hung.
func SetRR(prio int, limit time.Duration) error {
	// pid 0 of sched_setattr(2) is the calling thread.
	err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_RR, Flags: unix.SCHED_FLAG_RESET_ON_FORK, Priority: uint32(prio)}, 0)
	if err != nil {
		return fmt.Errorf("SCHED_RR priority %d: %w", prio, hint(err, fmt.Sprintf("CAP_SYS_NICE, or an RLIMIT_RTPRIO of at least %d", prio)))
	}
	if err := raiseRTTime(limit); err != nil {
		return fmt.Errorf("RLIMIT_RTTIME: %w", err)
	}
	return nil
}

// RearmRTTimeWarning puts RLIMIT_RTTIME's soft limit back to half the
// hard one, as set here: at each SIGXCPU the kernel raises the soft limit
// by a second, so that without this only the first overrun is signalled.
func RearmRTTimeWarning() error {
	rttime.mu.Lock()
	defer rttime.mu.Unlock()
	if rttime.set == 0 {
		return nil
	}
	us := uint64(rttime.set / time.Microsecond)
	return unix.Setrlimit(unix.RLIMIT_RTTIME, &unix.Rlimit{Cur: us / 2, Max: us})
}

// rttime guards the process's RLIMIT_RTTIME as set here.
var rttime struct {
	mu  sync.Mutex
	set time.Duration // the largest limit set; 0: none yet
}

func raiseRTTime(limit time.Duration) error {
	if limit <= 0 {
		limit = DefaultRTTimeLimit
	}
	rttime.mu.Lock()
	defer rttime.mu.Unlock()
	if limit <= rttime.set {
		return nil
	}
	us := uint64(limit / time.Microsecond)
	// The soft limit sends SIGXCPU (which Go ignores), the hard one
	// SIGKILL (getrlimit(2)); keepalived warns at half the limit.
	if err := unix.Setrlimit(unix.RLIMIT_RTTIME, &unix.Rlimit{Cur: us / 2, Max: us}); err != nil {
		return hint(err, "CAP_SYS_RESOURCE to raise it above the current hard limit")
	}
	rttime.set = limit
	return nil
}

var lockOnce = sync.OnceValue(func() error {
	// MCL_ONFAULT locks pages as they are touched: without it
	// MCL_FUTURE would fault in the whole of every mapping the Go
	// runtime makes (heap arenas are reserved in large pieces).
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		return fmt.Errorf("mlockall: %w", hint(err, "CAP_IPC_LOCK, or an RLIMIT_MEMLOCK as large as the process"))
	}
	return nil
})

// LockMemory locks the whole process in memory, now and as it grows, so
// that no page a protocol thread touches is ever swapped out
// (keepalived's *_no_swap). It runs once; later calls return the first
// call's result.
func LockMemory() error { return lockOnce() }

// hint adds what would permit the call to a permission error.
func hint(err error, needs string) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w (needs %s)", err, needs)
	}
	return err
}

// Priority returns the calling thread's real-time priority: its
// SCHED_RR or SCHED_FIFO priority, or 0 under a normal policy.
func Priority() (int, error) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0, err
	}
	if a.Policy != unix.SCHED_RR && a.Policy != unix.SCHED_FIFO {
		return 0, nil
	}
	return int(a.Priority), nil
}

// Stalled reports whether a timer of a protocol whose peer sends every
// interval ran late enough that the process (or the whole machine) was
// not running for a sizeable part of an interval: a quarter of it, and
// at least 2 ms, far above the scheduling noise of a thread that runs
// when its timer is due. A timeout judged then measured time when
// nothing could be received, and VRRP and BFD give it one more interval
// before they act on it.
func Stalled(late, interval time.Duration) bool {
	return late >= max(interval/4, 2*time.Millisecond)
}
