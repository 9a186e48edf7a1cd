package clock

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestFakeOrder: timers fire by deadline, ties in the order they were set,
// each seeing the clock at its own deadline; timers set by a firing timer
// fire within the same Advance when due; stopped ones never fire.
func TestFakeOrder(t *testing.T) {
	c := NewFake(t0)
	type fire struct {
		name string
		at   time.Duration
	}
	var got []fire
	record := func(name string) func() {
		return func() { got = append(got, fire{name, c.Now().Sub(t0)}) }
	}
	c.AfterFunc(3*time.Second, record("c"))
	c.AfterFunc(time.Second, record("a1"))
	c.AfterFunc(time.Second, record("a2"))
	stopped := c.AfterFunc(2*time.Second, record("stopped"))
	c.AfterFunc(2*time.Second, func() {
		record("b")()
		c.AfterFunc(500*time.Millisecond, record("b+"))
		c.AfterFunc(0, record("b0"))
	})
	c.AfterFunc(-time.Second, record("now"))
	c.AfterFunc(10*time.Second, record("later"))
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop of a pending timer must report true once, then false")
	}
	c.Advance(3 * time.Second)
	want := []fire{{"now", 0}, {"a1", time.Second}, {"a2", time.Second}, {"b", 2 * time.Second},
		{"b0", 2 * time.Second}, {"b+", 2500 * time.Millisecond}, {"c", 3 * time.Second}}
	if !slices.Equal(got, want) {
		t.Errorf("fired %v, want %v", got, want)
	}
	if c.Now() != t0.Add(3*time.Second) || c.Pending() != 1 {
		t.Errorf("after Advance(3s): now %v, %d pending; want t0+3s, 1 (later)", c.Now().Sub(t0), c.Pending())
	}
}

// TestFakeStepUntil: one timer per step, the clock moving to each deadline
// and to the end once none is due; it never goes back.
func TestFakeStepUntil(t *testing.T) {
	c := NewFake(t0)
	fired := 0
	c.AfterFunc(time.Second, func() { fired++ })
	c.AfterFunc(2*time.Second, func() { fired++ })
	if !c.StepUntil(t0.Add(5*time.Second)) || fired != 1 || c.Now() != t0.Add(time.Second) {
		t.Fatalf("first step: fired %d, now %v", fired, c.Now().Sub(t0))
	}
	if c.StepUntil(t0.Add(1500*time.Millisecond)) || fired != 1 || c.Now() != t0.Add(1500*time.Millisecond) {
		t.Fatalf("step to before the next deadline: fired %d, now %v", fired, c.Now().Sub(t0))
	}
	if c.StepUntil(t0) || c.Now() != t0.Add(1500*time.Millisecond) {
		t.Fatalf("a step into the past moved the clock to %v", c.Now().Sub(t0))
	}
}

// TestSleepFake: Sleep on a fake clock returns once the clock is advanced
// past it, not before.
func TestSleepFake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewFake(t0)
		var woke time.Time
		go func() {
			Sleep(c, time.Minute)
			woke = c.Now()
		}()
		synctest.Wait() // the sleeper is blocked on its timer
		c.Advance(59 * time.Second)
		synctest.Wait()
		if !woke.IsZero() {
			t.Fatal("Sleep(1m) returned after 59s")
		}
		c.Advance(time.Second)
		synctest.Wait()
		if woke != t0.Add(time.Minute) {
			t.Errorf("woke at %v, want t0+1m", woke.Sub(t0))
		}
	})
}

// TestReal: the real clock runs and can cancel timers.
func TestReal(t *testing.T) {
	fired := make(chan struct{})
	Real.AfterFunc(time.Millisecond, func() { close(fired) })
	<-fired
	if Real.AfterFunc(time.Hour, func() { t.Error("a stopped timer fired") }).Stop() != true {
		t.Error("Stop of a pending real timer reported false")
	}
	if d := time.Since(Real.Now()); d < 0 || d > time.Hour {
		t.Errorf("Real.Now is %v away from time.Now", d)
	}
}
