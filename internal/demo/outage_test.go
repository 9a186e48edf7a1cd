package demo

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMeasureOutage(t *testing.T) {
	killed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return killed.Add(time.Duration(ms) * time.Millisecond) }
	refused := errors.New("i/o timeout")
	promoted := at(3600)
	for _, tt := range []struct {
		name     string
		attempts []attempt
		want     Outage
		wantErr  string // "" means no error
	}{
		{
			name: "failed until the backup took over",
			attempts: []attempt{
				{end: at(200), err: refused}, {end: at(420), err: refused}, {end: at(3500), err: refused},
				{end: at(3710), by: "rs2"},
			},
			want: Outage{Served: 3710 * time.Millisecond, Failed: 3, By: "rs2", Promoted: 3600 * time.Millisecond, Bound: 3613 * time.Millisecond},
		},
		{
			// What a BACKUP forwarding flooded frames looked like: the
			// first request answered at once.
			name:     "served before the backup took over",
			attempts: []attempt{{end: at(5), by: "rs1"}},
			want:     Outage{Served: 5 * time.Millisecond, By: "rs1", Promoted: 3600 * time.Millisecond, Bound: 3613 * time.Millisecond},
			wantErr:  "client served by rs1 0.005s after the kill, 3.595s before the backup became MASTER (0 requests failed)",
		},
		{
			name:     "never served",
			attempts: []attempt{{end: at(200), err: refused}, {end: at(400), err: refused}},
			want:     Outage{Failed: 2, Promoted: 3600 * time.Millisecond, Bound: 3613 * time.Millisecond},
			wantErr:  "client not served after the kill: 2 requests failed, the last: i/o timeout",
		},
		{
			name:    "no request",
			want:    Outage{Promoted: 3600 * time.Millisecond, Bound: 3613 * time.Millisecond},
			wantErr: "the client made no request after the kill",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := measureOutage(killed, promoted, 3613*time.Millisecond, tt.attempts)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outage (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// The client asks until it is served, and stops asking then.
func TestAskUntilServed(t *testing.T) {
	calls := 0
	as := askUntilServed(t.Context(), func() (string, error) {
		calls++
		if calls < 3 {
			return "", errors.New("timeout")
		}
		return "rs2", nil
	})
	if len(as) != 3 || calls != 3 || as[0].err == nil || as[1].err == nil || as[2].err != nil || as[2].by != "rs2" {
		t.Errorf("after 2 failures and a success: %d calls, attempts %+v", calls, as)
	}
	ctx, cancel := context.WithCancel(t.Context())
	as = askUntilServed(ctx, func() (string, error) {
		cancel()
		return "", errors.New("timeout")
	})
	if len(as) != 1 {
		t.Errorf("cancelled after the first failure: %d attempts, want 1", len(as))
	}
}
