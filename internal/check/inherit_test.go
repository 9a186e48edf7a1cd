package check

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// TestInherit: after a reload, a checker config.Diff keeps (its target
// and type unchanged, its timeout changed in place) keeps its state: a down
// server stays down, with no "initial state" up. One whose target changed
// is another checker and starts afresh.
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
	oldCfg := lab.ParseConfig(t, conf)
	old := NewCore(oldCfg.VirtualServers, func(time.Duration) time.Duration { return 0 })
	old.Start(now)
	// Both checkers run and fail, so both servers go down.
	for _, id := range old.Due(LaneMain, now) {
		old.Complete(now, id, Result{Err: errors.New("connection refused")})
	}
	changed := strings.Replace(conf, "real_server 10.0.0.2 80 {\n        TCP_CHECK {\n            connect_timeout 1", "real_server 10.0.0.2 80 {\n        TCP_CHECK {\n            connect_timeout 2", 1)
	changed = strings.Replace(changed, "real_server 10.0.0.3 80 {\n        TCP_CHECK {\n", "real_server 10.0.0.3 80 {\n        TCP_CHECK {\n            connect_port 81\n", 1)
	newCfg := lab.ParseConfig(t, changed)
	c := NewCore(newCfg.VirtualServers, nil)
	c.Inherit(old, config.Diff(oldCfg, newCfg))
	evs := c.Start(now)
	health := map[string]EventKind{}
	for _, e := range evs {
		if e.RS != nil {
			health[e.RS.IP.String()] = e.Kind
		}
	}
	if health["10.0.0.2"] != RealServerDown {
		t.Errorf("failed 10.0.0.2, its timeout changed, is %v after the reload, want it to stay down", health["10.0.0.2"])
	}
	if health["10.0.0.3"] != RealServerUp {
		t.Errorf("10.0.0.3, its checker's target changed, is %v, want the initial state (up)", health["10.0.0.3"])
	}
	snap := c.Snapshot()
	if ck := snap[0].RealServers[0].Checkers[0]; ck.LastError != "connection refused" {
		t.Errorf("inherited last error %q", ck.LastError)
	}
}
