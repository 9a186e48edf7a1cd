package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// defaultMinAutoPriorityDelay is keepalived's min_auto_priority_delay
// default (global_data.c: 1 s).
const defaultMinAutoPriorityDelay = time.Second

// realtime is keepalived's automatic priority increase (keepalived.conf(5)
// max_auto_priority, min_auto_priority_delay; lib/scheduler.c and
// lib/process.c increment_process_priority): when a timer of the VRRP loop
// runs more than minDelay late, the loop's thread is moved to SCHED_RR at
// priority 1, and one higher at each later such delay, up to max. The
// engine's loop runs on an OS thread of its own (runtime.LockOSThread in
// Run), so only that thread, the one that handles adverts and timers and
// sends adverts, is raised; SCHED_RESET_ON_FORK keeps threads and scripts
// started from it out of the real-time class. A failure (no CAP_SYS_NICE
// and no RLIMIT_RTPRIO) is logged once and the loop goes on as it was.
type realtime struct {
	max      int
	minDelay time.Duration
	cur      int // current SCHED_RR priority; 0: the normal scheduler
	failed   bool
	// ownThread is set once the loop runs on a locked thread of its own;
	// until then no thread is changed.
	ownThread bool
	log       *slog.Logger
	// set moves the calling thread to SCHED_RR at prio (setRR; tests
	// replace it).
	set func(prio int) error
}

func newRealtime(max int, minDelay time.Duration, log *slog.Logger) *realtime {
	r := &realtime{log: log, set: setRR}
	r.reconfigure(max, minDelay)
	return r
}

// reconfigure takes a reload's settings; a priority already raised stays
// (keepalived does not lower it either).
func (r *realtime) reconfigure(max int, minDelay time.Duration) {
	if minDelay <= 0 {
		minDelay = defaultMinAutoPriorityDelay
	}
	r.max, r.minDelay = max, minDelay
}

// late records that a timer of the loop ran by late after it was due.
func (r *realtime) late(by time.Duration) {
	if !r.ownThread || r.failed || by <= r.minDelay || r.cur >= r.max {
		return
	}
	next := r.cur + 1
	if err := r.set(next); err != nil {
		r.failed = true
		r.log.Warn("max_auto_priority: cannot raise the VRRP thread to real-time scheduling; it keeps the normal scheduler", "late", by, "err", err)
		return
	}
	r.cur = next
	r.log.Info("VRRP timer ran late: real-time priority raised", "late", by, "sched_rr_priority", next, "max_auto_priority", r.max)
}

// setRR moves the calling thread (pid 0 of sched_setattr(2), as of
// sched_setscheduler(2), is the calling thread) to SCHED_RR at prio.
func setRR(prio int) error {
	err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_RR, Flags: unix.SCHED_FLAG_RESET_ON_FORK, Priority: uint32(prio)}, 0)
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w (needs CAP_SYS_NICE, or an RLIMIT_RTPRIO of at least %d)", err, prio)
	}
	return err
}
