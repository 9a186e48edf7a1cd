package vrrp

import (
	"log/slog"
	"time"

	"tandem/internal/config"
	"tandem/internal/realtime"
)

// defaultMinAutoPriorityDelay is keepalived's min_auto_priority_delay
// default (global_data.c: 1 s).
const defaultMinAutoPriorityDelay = time.Second

// autoPriority schedules the engine loop's thread: the configured
// vrrp_rt_priority, vrrp_priority, vrrp_cpu_affinity and
// vrrp_rlimit_rttime at start (internal/realtime), and keepalived's
// automatic priority increase (keepalived.conf(5) max_auto_priority,
// min_auto_priority_delay; lib/scheduler.c and lib/process.c
// increment_process_priority): when a timer of the VRRP loop runs more
// than minDelay late, the loop's thread is moved to SCHED_RR one above
// where it is (1 from the normal scheduler, vrrp_rt_priority+1 from
// there), up to max. The engine's loop runs on an OS thread of its own
// (runtime.LockOSThread in Run) whenever any of these is set, so that
// thread, the one that handles adverts and timers and sends adverts, is
// the one changed; SCHED_RESET_ON_FORK keeps threads and scripts started
// from it out of the real-time class. With vrrp_rt_priority the daemon
// has moved the rest of the process to SCHED_RR one below it first
// (realtime.SetProcessRR). A failure (no CAP_SYS_NICE and no
// RLIMIT_RTPRIO) is logged once and the loop goes on as it was.
type autoPriority struct {
	max      int
	minDelay time.Duration
	thread   config.ThreadSched
	cur      int // current SCHED_RR priority; 0: the normal scheduler
	failed   bool
	locked   bool // vrrp_no_swap was acted on
	// ownThread is set once the loop runs on a locked thread of its own;
	// until then no thread is changed.
	ownThread bool
	log       *slog.Logger
	// set moves the calling thread to SCHED_RR at prio (realtime.SetRR;
	// tests replace it).
	set func(prio int) error
}

func newAutoPriority(g *config.Global, log *slog.Logger) *autoPriority {
	r := &autoPriority{log: log}
	r.set = func(prio int) error { return realtime.SetRR(prio, time.Duration(r.thread.RLimitRTTime)) }
	r.reconfigure(g)
	return r
}

// wanted reports whether the loop needs a thread of its own.
func (r *autoPriority) wanted() bool {
	return r.max > 0 || r.thread.RTPriority > 0 || r.thread.Nice != 0 || len(r.thread.CPUs) > 0
}

// reconfigure takes a reload's settings; a priority already raised stays
// (keepalived does not lower it either). Called in the loop: on a thread
// of its own, changed thread settings are applied to it at once.
func (r *autoPriority) reconfigure(g *config.Global) {
	minDelay := time.Duration(g.MinAutoPriorityDelay)
	if minDelay <= 0 {
		minDelay = defaultMinAutoPriorityDelay
	}
	r.max, r.minDelay = g.MaxAutoPriority, minDelay
	old := r.thread
	r.thread = g.VRRPThread
	r.lockMemory()
	if r.ownThread && !old.Equal(r.thread) {
		r.apply()
	}
}

// lockMemory is vrrp_no_swap: mlockall(2) locks the whole process, not
// only the VRRP thread (realtime.LockMemory), once, when first asked for;
// a reload that drops it leaves the process locked.
func (r *autoPriority) lockMemory() {
	if !r.thread.NoSwap || r.locked {
		return
	}
	r.locked = true
	if err := realtime.LockMemory(); err != nil {
		r.log.Warn("vrrp_no_swap: the process is not locked in memory", "err", err)
		return
	}
	r.log.Info("vrrp_no_swap: the process is locked in memory (all of it: mlockall is process-wide)")
}

// start runs on the loop's own, locked thread, before the loop.
func (r *autoPriority) start() {
	r.ownThread = true
	r.apply()
}

// apply sets the configured scheduling on the calling (loop) thread; what
// the system refuses is logged in one line and the loop runs as it can.
func (r *autoPriority) apply() {
	t := r.thread
	prio := max(t.RTPriority, r.cur) // never lowered
	err := realtime.Apply(realtime.Thread{Priority: prio, Nice: t.Nice, CPUs: t.CPUs, RTTimeLimit: time.Duration(t.RLimitRTTime)})
	if cur, gerr := realtime.Priority(); gerr == nil {
		r.cur = cur
	}
	if err != nil {
		r.log.Warn("VRRP thread scheduling not (fully) applied; the thread keeps what the system allowed", "vrrp_rt_priority", t.RTPriority,
			"vrrp_priority", t.Nice, "vrrp_cpu_affinity", t.CPUs, "sched_rr_priority", r.cur, "err", err)
		return
	}
	if prio > 0 || t.Nice != 0 || len(t.CPUs) > 0 {
		r.log.Info("VRRP thread scheduling applied", "sched_rr_priority", r.cur, "vrrp_priority", t.Nice, "vrrp_cpu_affinity", t.CPUs)
	}
}

// late records that a timer of the loop ran by late after it was due.
func (r *autoPriority) late(by time.Duration) {
	if !r.ownThread || r.failed || by <= r.minDelay || r.cur >= r.max {
		return
	}
	next := r.cur + 1
	if err := r.set(next); err != nil {
		r.failed = true
		r.log.Warn("max_auto_priority: cannot raise the VRRP thread to real-time scheduling; it keeps the scheduler it has", "late", by, "err", err)
		return
	}
	r.cur = next
	r.log.Info("VRRP timer ran late: real-time priority raised", "late", by, "sched_rr_priority", next, "max_auto_priority", r.max)
}
