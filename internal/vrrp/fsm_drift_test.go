package vrrp

import (
	"testing"
	"time"
)

// TestAdvertScheduleDoesNotDrift: a master whose advert timer is handled
// late keeps its schedule (the next advert is due one interval after the
// late one was due), and skips intervals it missed altogether.
func TestAdvertScheduleDoesNotDrift(t *testing.T) {
	cfg := baseConfig()
	cfg.Priority = 255 // the owner starts as master at once
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	due := armedAt(t, m.Handle(t0, Start{}))
	if want := t0.Add(time.Second); !due.Equal(want) {
		t.Fatalf("first advert due %v, want %v", due, want)
	}
	// Handled 300 ms late: the next is still due at t0+2s.
	next := armedAt(t, m.Handle(due.Add(300*time.Millisecond), TimerFired{Gen: m.gen}))
	if want := t0.Add(2 * time.Second); !next.Equal(want) {
		t.Errorf("after a late advert, next due %v, want %v", next, want)
	}
	// Handled 2.5 intervals late: the missed ones are skipped.
	next = armedAt(t, m.Handle(next.Add(2500*time.Millisecond), TimerFired{Gen: m.gen}))
	if want := t0.Add(5 * time.Second); !next.Equal(want) {
		t.Errorf("after missed adverts, next due %v, want %v", next, want)
	}
}

func armedAt(t *testing.T, as []Action) time.Time {
	t.Helper()
	for _, a := range as {
		if at, ok := a.(ArmTimer); ok {
			return at.At
		}
	}
	t.Fatalf("no timer armed in %v", as)
	return time.Time{}
}
