package vrrp

import (
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/realtime"
)

// TestRealtimeRaises: each timer run more than min_auto_priority_delay
// late raises the loop's SCHED_RR priority by one, from 1 up to
// max_auto_priority and no further (lib/process.c
// increment_process_priority); a timer late by less changes nothing; a
// loop that is not on a thread of its own is never touched; a refusal
// stops the attempts.
func TestRealtimeRaises(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	var got []int
	r := newAutoPriority(&config.Global{Ops: config.Ops{MaxAutoPriority: 3}}, log)
	r.set = func(p int) error { got = append(got, p); return nil }
	r.late(5 * time.Second) // not on its own thread yet
	r.ownThread = true
	for _, by := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second} {
		r.late(by)
	}
	if d := cmp.Diff([]int{1, 2, 3}, got); d != "" {
		t.Errorf("priorities set (-want +got):\n%s", d)
	}

	got = nil
	r = newAutoPriority(&config.Global{Ops: config.Ops{MaxAutoPriority: 10, MinAutoPriorityDelay: config.Duration(100 * time.Millisecond)}}, log)
	r.ownThread = true
	r.set = func(p int) error { got = append(got, p); return unix.EPERM }
	r.late(200 * time.Millisecond)
	r.late(200 * time.Millisecond)
	if d := cmp.Diff([]int{1}, got); d != "" || r.cur != 0 {
		t.Errorf("after a refusal: set %v (-want +got %s), priority %d", got, d, r.cur)
	}
}

// TestRTPriorityThenAuto: vrrp_rt_priority puts the loop's own thread
// in SCHED_RR at that priority when the loop starts, and
// max_auto_priority raises it from there, not from 1 (lib/process.c
// increment_process_priority starts from cur_rt_priority).
func TestRTPriorityThenAuto(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE) to use real-time scheduling")
	}
	g := &config.Global{Ops: config.Ops{MaxAutoPriority: 5, VRRPThread: config.ThreadSched{RTPriority: 3}}}
	r := newAutoPriority(g, slog.New(slog.DiscardHandler))
	if !r.wanted() {
		t.Fatal("vrrp_rt_priority must give the loop a thread of its own")
	}
	type result struct {
		prio, cur int
		err       error
	}
	res := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		r.start()
		p, err := realtime.Priority()
		res <- result{p, r.cur, err}
	}()
	got := <-res
	if got.err != nil || got.prio != 3 || got.cur != 3 {
		t.Fatalf("after start: thread priority %d, recorded %d (%v); want 3", got.prio, got.cur, got.err)
	}
	var set []int
	r.set = func(p int) error { set = append(set, p); return nil }
	for range 4 {
		r.late(2 * time.Second)
	}
	if d := cmp.Diff([]int{4, 5}, set); d != "" {
		t.Errorf("raised to (-want +got):\n%s", d)
	}
}

// TestEngineLateTimerRaises: with max_auto_priority, the engine's loop
// runs on a thread of its own and a timer event handled late raises it.
func TestEngineLateTimerRaises(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		conf := "global_defs {\n    max_auto_priority 5\n    min_auto_priority_delay 100000\n}\n" + instanceConf("VI_1", 1, 200, "")
		var mu sync.Mutex
		var set []int
		r := startRouter(t, lan, "10.0.0.1", conf, func(e *Engine) {
			e.rt.set = func(p int) error { mu.Lock(); set = append(set, p); mu.Unlock(); return nil }
		})
		e := r.engine
		lan.waitFor(t, "master", 2*time.Second, func() bool { return r.state("VI_1") == Master })
		mu.Lock()
		before := len(set)
		mu.Unlock()
		if before != 0 {
			t.Fatalf("raised %v with no late timer", set)
		}
		// A (replaced) timer handled 300 ms after it was due.
		e.mu.Lock()
		in := e.insts[0]
		e.mu.Unlock()
		e.send(loopEvent{inst: in, ev: TimerFired{Gen: math.MaxUint64}, due: lan.clock.Now().Add(-300 * time.Millisecond)})
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if d := cmp.Diff([]int{1}, set); d != "" {
			t.Errorf("priorities set (-want +got):\n%s", d)
		}
	})
}
