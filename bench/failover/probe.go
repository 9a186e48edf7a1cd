package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/realtime"
	"tandem/internal/vrrp"
)

// probeTick is how often the scheduling probe asks to wake.
const probeTick = time.Millisecond

// schedProbe is a thread with the daemons' real-time priority that does
// nothing but sleep probeTick at a time and note how late it wakes: when
// it wakes later than a protocol's timeout, no thread of that priority
// could have sent or judged anything on time, whatever the daemon. It
// tells the machine's stalls from the daemons' own.
type schedProbe struct {
	stop    chan struct{}
	stopped sync.Once
	done    chan struct{}
	res     probeResult // the probe's thread writes it until done
}

// probeResult counts the probe's wake-ups later than the VRRP backup's
// Master_Down_Interval and than the BFD detection time, and the latest.
type probeResult struct {
	Wakeups      int           `json:"wakeups"`
	OverMasterDn int           `json:"over_master_down"`
	OverBFD      int           `json:"over_bfd_detection"`
	Longest      time.Duration `json:"longest_ns"`
	Err          string        `json:"error,omitempty"`
}

// masterDown is the stress case backup's Master_Down_Interval (priority
// 90), bfdDetection the BFD session's detection time.
var (
	masterDown   = vrrp.MasterDownInterval(uint8(stressAdvert.version), stressAdvert.interval, 90)
	bfdDetection = bfdInterval * bfdMultiplier
)

func startProbe(rtPriority int) *schedProbe {
	p := &schedProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if rtPriority > 0 {
			if err := realtime.Apply(realtime.Thread{Priority: rtPriority}); err != nil {
				p.res.Err = err.Error()
			}
		}
		ts := unix.NsecToTimespec(probeTick.Nanoseconds())
		last := time.Now()
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			unix.Nanosleep(&ts, nil)
			now := time.Now()
			late := now.Sub(last) - probeTick
			last = now
			p.res.Wakeups++
			if late > masterDown {
				p.res.OverMasterDn++
			}
			if late > bfdDetection {
				p.res.OverBFD++
			}
			p.res.Longest = max(p.res.Longest, late)
		}
	}()
	return p
}

// end stops the probe (once) and returns what it saw.
func (p *schedProbe) end() probeResult {
	p.stopped.Do(func() { close(p.stop) })
	<-p.done
	return p.res
}

func (r probeResult) String() string {
	s := fmt.Sprintf("scheduling probe (a thread at the daemons' priority waking every %v): %d wake-ups, %d later than Master_Down_Interval (%v), %d later than the BFD detection time (%v), the latest %v late",
		probeTick, r.Wakeups, r.OverMasterDn, masterDown, r.OverBFD, bfdDetection, r.Longest.Round(100*time.Microsecond))
	if r.Err != "" {
		s += " (its scheduling: " + r.Err + ")"
	}
	return s
}
