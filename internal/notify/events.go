package notify

import (
	"sync"
	"time"
)

// Event is one entry of the event log.
type Event struct {
	Time time.Time `json:"time"`
	// Kind says which part of Tandem the event comes from, e.g. "vrrp",
	// "track", "check", "lvs", "notify".
	Kind string `json:"kind"`
	// Object names what the event is about, e.g. an instance, a real
	// server or a script.
	Object  string `json:"object"`
	Message string `json:"message"`
	// Reason says why, for a VRRP transition ("advert timeout from
	// 10.0.0.11").
	Reason string `json:"reason,omitempty"`
}

// EventLog keeps the most recent events, up to a fixed number, for the
// status API and page. It is safe for concurrent use.
type EventLog struct {
	mu    sync.Mutex
	ring  []Event
	start int // index of the oldest event
	n     int // number of events held
}

// NewEventLog returns a log that keeps the last size events (at least one).
func NewEventLog(size int) *EventLog {
	return &EventLog{ring: make([]Event, max(size, 1))}
}

// Add records e, dropping the oldest event if the log is full.
func (l *EventLog) Add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n < len(l.ring) {
		l.ring[(l.start+l.n)%len(l.ring)] = e
		l.n++
		return
	}
	l.ring[l.start] = e
	l.start = (l.start + 1) % len(l.ring)
}

// Events returns a copy of the events held, oldest first.
func (l *EventLog) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, l.n)
	for i := range out {
		out[i] = l.ring[(l.start+i)%len(l.ring)]
	}
	return out
}
