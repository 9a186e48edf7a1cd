// Package clock is where time comes from: code that waits or schedules takes
// a Clock, the process passes Real, and tests pass a Fake they advance by
// hand, so that seconds of protocol time cost no wall time and every run
// fires the same timers in the same order.
package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or in the goroutine
	// that advances the clock (Fake) once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not happened yet, and reports
	// whether it did so.
	Stop() bool
}

// Real is the system clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Sleep blocks for d on c.
func Sleep(c Clock, d time.Duration) {
	woken := make(chan struct{})
	c.AfterFunc(d, func() { close(woken) })
	<-woken
}

// Fake is a clock that moves only when told to. Timers fire in order of
// their deadline, and timers with the same deadline in the order they were
// set. It is safe for concurrent use; timer functions run outside its lock,
// so they may set or stop timers.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers fakeQueue
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc schedules fn at Now()+d; a d <= 0 is due at once, at the next
// Step or Advance.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &fakeTimer{clock: f, at: f.now.Add(max(d, 0)), seq: f.seq, fn: fn}
	heap.Push(&f.timers, t)
	return t
}

// Pending returns the number of timers not yet fired or stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// StepUntil fires the earliest timer due at or before end, moving the clock
// to its deadline, and reports whether there was one; when there is none,
// the clock moves to end (unless it is already past it).
func (f *Fake) StepUntil(end time.Time) bool {
	f.mu.Lock()
	if len(f.timers) == 0 || f.timers[0].at.After(end) {
		if end.After(f.now) {
			f.now = end
		}
		f.mu.Unlock()
		return false
	}
	t := heap.Pop(&f.timers).(*fakeTimer)
	t.index = -1
	if t.at.After(f.now) {
		f.now = t.at
	}
	f.mu.Unlock()
	t.fn()
	return true
}

// AdvanceTo fires, in order, every timer due at or before end (including
// those the fired ones set), and leaves the clock at end.
func (f *Fake) AdvanceTo(end time.Time) {
	for f.StepUntil(end) {
	}
}

// Advance is AdvanceTo(Now()+d).
func (f *Fake) Advance(d time.Duration) { f.AdvanceTo(f.Now().Add(d)) }

type fakeTimer struct {
	clock *Fake
	at    time.Time
	seq   uint64
	fn    func()
	index int // in clock.timers; -1 once fired or stopped
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.clock.timers, t.index)
	t.index = -1
	return true
}

// fakeQueue is a heap of timers by (deadline, sequence).
type fakeQueue []*fakeTimer

func (q fakeQueue) Len() int { return len(q) }
func (q fakeQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q fakeQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *fakeQueue) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*q)
	*q = append(*q, t)
}
func (q *fakeQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	*q = old[:len(old)-1]
	return t
}
