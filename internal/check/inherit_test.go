package check

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tandem/internal/config"
)

func parseVSS(t *testing.T, src string) []*config.VirtualServer {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(src), config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg.VirtualServers
}

// TestInherit: after a reload, an unchanged checker keeps its state (a
// down server stays down, with no "initial state" up), a changed one
// starts afresh.
func TestInherit(t *testing.T) {
	conf := `virtual_server 10.0.0.1 80 {
    lb_algo rr
    protocol TCP
    real_server 10.0.0.2 80 {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
    real_server 10.0.0.3 80 {
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
`
	now := time.Unix(1000, 0)
	old := NewCore(parseVSS(t, conf), func(time.Duration) time.Duration { return 0 })
	old.Start(now)
	// Both checkers run; the first fails, so 10.0.0.2 goes down.
	for _, id := range old.Due(LaneMain, now) {
		r := Result{OK: true}
		if id == 0 {
			r = Result{Err: errors.New("connection refused")}
		}
		old.Complete(now, id, r)
	}
	changed := strings.Replace(conf, "real_server 10.0.0.3 80 {\n        TCP_CHECK {\n            connect_timeout 1", "real_server 10.0.0.3 80 {\n        TCP_CHECK {\n            connect_timeout 2", 1)
	c := NewCore(parseVSS(t, changed), nil)
	c.Inherit(old)
	evs := c.Start(now)
	health := map[string]EventKind{}
	for _, e := range evs {
		if e.RS != nil {
			health[e.RS.IP.String()] = e.Kind
		}
	}
	if health["10.0.0.2"] != RealServerDown {
		t.Errorf("unchanged, failed 10.0.0.2 is %v after the reload, want it to stay down", health["10.0.0.2"])
	}
	if health["10.0.0.3"] != RealServerUp {
		t.Errorf("changed 10.0.0.3 is %v, want the initial state (up)", health["10.0.0.3"])
	}
	snap := c.Snapshot()
	if ck := snap[0].RealServers[0].Checkers[0]; ck.LastError != "connection refused" {
		t.Errorf("inherited last error %q", ck.LastError)
	}
}
