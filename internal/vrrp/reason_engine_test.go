package vrrp

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// startLogged runs conf at addr with its log in a buffer and its state
// changes recorded.
func startLogged(t *testing.T, lan *fakeLAN, addr, conf string) (*router, *lab.LogBuffer, func() []StateChange) {
	t.Helper()
	cfg, diags := config.Parse("t.conf", []byte(conf), config.Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	var logs lab.LogBuffer
	var mu sync.Mutex
	var changes []StateChange
	h := &fakeHost{lan: lan, addr: netip.MustParseAddr(addr), vips: map[netip.Prefix]bool{}}
	e, err := NewEngine(cfg, h, slog.New(slog.NewTextHandler(&logs, nil)), func(sc StateChange) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, sc)
	}, WithClock(lan.clock))
	if err != nil {
		t.Fatal(err)
	}
	return runRouter(t, lan, h, e), &logs, func() []StateChange {
		mu.Lock()
		defer mu.Unlock()
		return changes
	}
}

// TestEngineLogsOneLinePerTransition: a backup that takes over from a
// crashed master logs the one line `VRRP transition ... reason="advert
// timeout from <master>"`, one such line per transition it counts, and
// gives the same reason to the daemon and its status.
func TestEngineLogsOneLinePerTransition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		var mu sync.Mutex
		dead := false
		aAddr := netip.MustParseAddr("10.0.0.1")
		lan.drop = func(src netip.Addr) bool { mu.Lock(); defer mu.Unlock(); return dead && src == aAddr }
		a := startRouter(t, lan, "10.0.0.1", instanceConf("VI_1", 1, 200, ""))
		b, logs, changes := startLogged(t, lan, "10.0.0.2", instanceConf("VI_1", 1, 100, ""))
		lan.waitFor(t, "a master", 2*time.Second, func() bool { return a.state("VI_1") == Master && b.state("VI_1") == Backup })
		mu.Lock()
		dead = true
		mu.Unlock()
		lan.waitFor(t, "b master after a's crash", time.Second, func() bool { return b.state("VI_1") == Master })

		want := `msg="VRRP transition" instance=VI_1 vrid=1 from=BACKUP to=MASTER reason="advert timeout from 10.0.0.1" priority=100`
		if got := logs.Lines(want); len(got) != 1 {
			t.Errorf("log lines %q: %d, want 1 in:\n%s", want, len(got), strings.Join(logs.Lines(""), "\n"))
		}
		st := b.engine.Status()[0]
		// INIT -> BACKUP at start, BACKUP -> MASTER now: one line each.
		if got := logs.Lines("VRRP transition"); uint64(len(got)) != st.Transitions || st.Transitions != 2 {
			t.Errorf("%d transition lines for %d transitions, want 2 of each:\n%s", len(got), st.Transitions, strings.Join(got, "\n"))
		}
		if got := logs.Lines("from=INIT to=BACKUP reason=startup"); len(got) != 1 {
			t.Errorf("startup line: %q", got)
		}
		if st.Reason.String() != "advert timeout from 10.0.0.1" {
			t.Errorf("status reason %q", st.Reason)
		}
		cs := changes()
		if last := cs[len(cs)-1]; last.State != Master || last.Reason.String() != "advert timeout from 10.0.0.1" {
			t.Errorf("last StateChange %v %q, want MASTER with the reason", last.State, last.Reason)
		}
	})
}

// TestEngineSyncGroupReasons: a tracked script failing faults its
// instance with the tracker's words, its sync group partner with the
// group's, and the peer takes both over on the priority 0 adverts.
func TestEngineSyncGroupReasons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newLAN()
		group := "vrrp_sync_group G {\n group {\n VI_1\n VI_2\n }\n}\n"
		conf := group + instanceConf("VI_1", 1, 200, "") + instanceConf("VI_2", 2, 200, "")
		a, alogs, _ := startLogged(t, lan, "10.0.0.1", conf)
		b, blogs, _ := startLogged(t, lan, "10.0.0.2", strings.ReplaceAll(conf, "priority 200", "priority 100"))
		lan.waitFor(t, "a master of both", 2*time.Second, func() bool {
			return a.state("VI_1") == Master && a.state("VI_2") == Master && b.state("VI_1") == Backup && b.state("VI_2") == Backup
		})
		a.engine.Track("VI_1", "vrrp_script chk_nginx", 0, true, "track_script chk_nginx failed")
		lan.waitFor(t, "a in fault, b master of both", 2*time.Second, func() bool {
			return a.state("VI_1") == Fault && a.state("VI_2") == Fault && b.state("VI_1") == Master && b.state("VI_2") == Master
		})
		for _, want := range []struct {
			logs *lab.LogBuffer
			line string
		}{
			{alogs, `instance=VI_1 vrid=1 from=MASTER to=FAULT reason="track_script chk_nginx failed"`},
			{alogs, `instance=VI_2 vrid=2 from=MASTER to=FAULT reason="sync group G member VI_1 went FAULT"`},
			{alogs, `msg="VRRP sync group transition" group=G from=MASTER to=FAULT reason="track_script chk_nginx failed"`},
			{blogs, `instance=VI_1 vrid=1 from=BACKUP to=MASTER reason="priority 0 received from 10.0.0.1"`},
			{blogs, `instance=VI_2 vrid=2 from=BACKUP to=MASTER reason="priority 0 received from 10.0.0.1"`},
		} {
			if got := want.logs.Lines(want.line); len(got) != 1 {
				t.Errorf("%d lines %q, want 1 in:\n%s", len(got), want.line, strings.Join(want.logs.Lines("transition"), "\n"))
			}
		}
	})
}
