package check

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"tandem/internal/config"
)

// TestRetryProperty: for any outcome sequence, retry and alpha, a checker
// goes down exactly when an up checker has failed retry+1 times in a row,
// comes up on the first success while down, and runs delay_before_retry
// apart only while retrying an up checker.
func TestRetryProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		retry := rapid.IntRange(0, 4).Draw(rt, "retry")
		alpha := rapid.Bool().Draw(rt, "alpha")
		outcomes := rapid.SliceOfN(rapid.Bool(), 1, 200).Draw(rt, "outcomes")
		c := NewCore([]*config.VirtualServer{vsWith(1, timing(10, 3, retry, 0, alpha))}, nil)
		c.Start(t0)
		up, streak := !alpha, 0
		now := t0
		for i, good := range outcomes {
			next, armed := c.Next(LaneMain)
			if !armed {
				rt.Fatal("no timer armed")
			}
			wantGap := 10 * time.Second
			if i > 0 && up && streak > 0 {
				wantGap = 3 * time.Second
			}
			if i > 0 && next.Sub(now) != wantGap {
				rt.Fatalf("run %d %v after the previous, want %v", i, next.Sub(now), wantGap)
			}
			now = next
			ids := c.Due(LaneMain, now)
			r := fail
			if good {
				r = ok
			}
			evs := c.Complete(now, ids[0], r)
			wantUp := up
			switch {
			case good:
				streak, wantUp = 0, true
			case up:
				streak++
				if streak == retry+1 {
					streak, wantUp = 0, false
				}
			}
			changed := len(evs) > 0
			if changed != (wantUp != up) {
				rt.Fatalf("run %d (good=%v): events %v, want a change: %v", i, good, evs, wantUp != up)
			}
			up = wantUp
			if got := c.Snapshot()[0].RealServers[0].Healthy; got != up {
				rt.Fatalf("run %d: healthy %v, want %v", i, got, up)
			}
		}
	})
}
