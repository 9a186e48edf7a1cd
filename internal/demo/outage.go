package demo

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// attempt is one client request made while a director is dead.
type attempt struct {
	end time.Time // when the answer or the error came
	by  string    // the real server that answered
	err error
}

// Outage is what the client saw of a master's death: how long it went
// unserved and how many of its requests failed meanwhile.
type Outage struct {
	// Served is the time from the kill to the end of the client's first
	// successful request.
	Served time.Duration
	// Failed counts the requests that failed before it.
	Failed int
	// By is the real server that answered it.
	By string
	// Promoted is the time from the kill to the backup's transition to
	// MASTER, as the backup itself recorded it.
	Promoted time.Duration
	// Bound is the backup's Master_Down_Interval: the longest it waits
	// after the last advertisement it heard before taking over.
	Bound time.Duration
}

// measureOutage turns the client's requests, made one after the other
// from the moment the master was killed and cut off, into the outage it
// saw. promoted is when the backup became MASTER. A request answered
// before then was forwarded by a director that was not MASTER (the dead
// one, or a BACKUP forwarding frames not addressed to it): the demo
// would be measuring a defect, not a failover, so that is an error.
func measureOutage(killed, promoted time.Time, bound time.Duration, attempts []attempt) (Outage, error) {
	o := Outage{Promoted: promoted.Sub(killed), Bound: bound}
	for _, a := range attempts {
		if a.err != nil {
			o.Failed++
			continue
		}
		o.Served, o.By = a.end.Sub(killed), a.by
		if a.end.Before(promoted) {
			return o, fmt.Errorf("client served by %s %s after the kill, %s before the backup became MASTER (%d requests failed): a director that is not MASTER forwarded it",
				a.by, secs3(o.Served), secs3(promoted.Sub(a.end)), o.Failed)
		}
		return o, nil
	}
	if len(attempts) == 0 {
		return o, errors.New("the client made no request after the kill")
	}
	return o, fmt.Errorf("client not served after the kill: %d requests failed, the last: %w", o.Failed, attempts[len(attempts)-1].err)
}

// askUntilServed is the client's side of a failover: it makes one request
// after another, each with a short dial timeout and a short pause after
// a failure, until one succeeds or ctx is done.
func askUntilServed(ctx context.Context, get func() (string, error)) []attempt {
	var as []attempt
	for ctx.Err() == nil {
		by, err := get()
		as = append(as, attempt{end: time.Now(), by: by, err: err})
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(askPause):
		}
	}
	return as
}

// askTimeout and askPause set the client's resolution: a failover is
// timed to within about their sum.
const (
	askTimeout = 200 * time.Millisecond
	askPause   = 20 * time.Millisecond
)

func secs3(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }
