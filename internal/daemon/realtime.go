package daemon

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"tandem/internal/config"
	"tandem/internal/realtime"
)

// scheduleProcess moves the whole process to SCHED_RR at the lowest of
// vrrp_rt_priority and bfd_rt_priority (realtime.ProcessPriority), before
// the engines start their protocol threads at their own priorities, as
// keepalived runs each role's whole process at its priority: a protocol
// thread alone at real-time priority still waits on the runtime's other
// threads, which a CPU hog at the normal policy starves. A reload that
// raises the lowest priority raises the threads below it; one that lowers
// or drops it changes nothing (keepalived does not lower a priority
// either). Programs Tandem starts run under the normal policy
// (realtime.ResetOnFork in internal/script). What the system refuses is
// logged in one line and the process runs as it can.
func (d *Daemon) scheduleProcess(g *config.Global) {
	prio := realtime.ProcessPriority(g.VRRPThread.RTPriority, g.BFDThread.RTPriority)
	if prio == 0 || prio <= d.processRR {
		return
	}
	// The longest limit a real-time role asks for (0: the default), set
	// first: raising the hard limit later needs CAP_SYS_RESOURCE.
	var limit time.Duration
	for _, t := range []config.ThreadSched{g.VRRPThread, g.BFDThread} {
		if t.RTPriority > 0 {
			l := time.Duration(t.RLimitRTTime)
			if l <= 0 {
				l = realtime.DefaultRTTimeLimit
			}
			limit = max(limit, l)
		}
	}
	if err := realtime.SetProcessRR(prio, limit); err != nil {
		d.opts.Log.Warn("the process is not (fully) real-time; the protocol threads still ask for their own priorities", "sched_rr_priority", prio, "err", err)
		return
	}
	if limit < realtime.DefaultRTTimeLimit {
		d.opts.Log.Warn("rlimit_rttime is below Tandem's default: the whole process runs real-time, and a Go runtime thread that runs this long without blocking gets tandem killed (SIGKILL)",
			"rlimit_rttime", limit, "default", realtime.DefaultRTTimeLimit)
	}
	d.processRR = prio
	d.opts.Log.Info("process scheduled real-time: every thread SCHED_RR, programs started by Tandem under the normal policy", "sched_rr_priority", prio)
}

// watchRTTime logs each SIGXCPU until ctx ends: the kernel sends it when
// a real-time thread has run for RLIMIT_RTTIME's soft limit (half the
// configured *_rlimit_rttime) without blocking, and kills the process
// (SIGKILL) at the hard limit; the Go runtime would ignore it. The kernel
// then raises the soft limit by a second; it is put back so that the next
// overrun is logged too.
func (d *Daemon) watchRTTime(ctx context.Context) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGXCPU)
	defer signal.Stop(c)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c:
		}
		d.opts.Log.Warn("SIGXCPU: a real-time thread ran past RLIMIT_RTTIME's soft limit (half of vrrp_rlimit_rttime/bfd_rlimit_rttime) without blocking; at the limit the kernel kills tandem")
		if err := realtime.RearmRTTimeWarning(); err != nil {
			d.opts.Log.Warn("RLIMIT_RTTIME's soft limit not reset: later overruns go unsignalled", "err", err)
		}
	}
}
