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
	r := newRealtime(3, 0, log)
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
	r = newRealtime(10, 100*time.Millisecond, log)
	r.ownThread = true
	r.set = func(p int) error { got = append(got, p); return unix.EPERM }
	r.late(200 * time.Millisecond)
	r.late(200 * time.Millisecond)
	if d := cmp.Diff([]int{1}, got); d != "" || r.cur != 0 {
		t.Errorf("after a refusal: set %v (-want +got %s), priority %d", got, d, r.cur)
	}
}

// TestSetRR: the real system call moves the calling thread, and only it,
// to SCHED_RR with SCHED_RESET_ON_FORK (so that threads and scripts
// started from it are not real-time).
func TestSetRR(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE) to use real-time scheduling")
	}
	type result struct {
		attr *unix.SchedAttr
		err  error
	}
	res := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var r result
		if r.err = setRR(1); r.err == nil {
			r.attr, r.err = unix.SchedGetAttr(0, 0)
		}
		res <- r
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.attr.Policy != unix.SCHED_RR || r.attr.Priority != 1 || r.attr.Flags&unix.SCHED_FLAG_RESET_ON_FORK == 0 {
		t.Errorf("thread scheduling %+v, want SCHED_RR priority 1 with RESET_ON_FORK", r.attr)
	}
	other, err := unix.SchedGetAttr(unix.Gettid(), 0)
	if err == nil && other.Policy == unix.SCHED_RR {
		t.Errorf("another thread is SCHED_RR too")
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
