package daemon

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
	"tandem/internal/ctsync"
	"tandem/internal/vrrp"
)

// fakeCT records what ctFollower asks of one conntrackd.
type fakeCT struct {
	cfg    *config.ConntrackSync
	events *[]string
}

func (f *fakeCT) Start() error { *f.events = append(*f.events, "start "+f.cfg.Interface); return nil }
func (f *fakeCT) Stop()        { *f.events = append(*f.events, "stop "+f.cfg.Interface) }
func (f *fakeCT) SetRole(r ctsync.Role) {
	*f.events = append(*f.events, f.cfg.Interface+" "+r.String())
}
func (f *fakeCT) Takeover()             { *f.events = append(*f.events, f.cfg.Interface+" takeover") }
func (f *fakeCT) Status() ctsync.Status { return ctsync.Status{Running: true, Role: "MASTER"} }

func testCTFollower(events *[]string) *ctFollower {
	c := newCTFollower("/nonexistent/tandem.sock", slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.open = func(cfg *config.ConntrackSync) (ctSyncer, error) {
		if cfg.Interface == "missing" {
			return nil, ctsync.ErrNotInstalled
		}
		return &fakeCT{cfg: cfg, events: events}, nil
	}
	return c
}

// TestCTFollower: conntrackd follows the named instance or sync group
// only, starts in its current role, restarts on a changed block (and only
// then), and stops with Tandem.
func TestCTFollower(t *testing.T) {
	var ev []string
	c := testCTFollower(&ev)
	blk := func(iface, inst, group string) *config.ConntrackSync {
		return &config.ConntrackSync{Interface: iface, Instance: inst, SyncGroup: group}
	}
	a := blk("eth2", "VI_1", "")
	c.setState("VI_1", false, vrrp.Master)     // before conntrackd starts
	c.takeover(&config.Instance{Name: "VI_1"}) // nothing runs yet
	if err := c.apply(config.Delta[*config.ConntrackSync]{Change: config.Added, New: a}); err != nil {
		t.Fatal(err)
	}
	c.setState("VI_2", false, vrrp.Fault) // not followed
	c.takeover(&config.Instance{Name: "VI_2"})
	c.takeover(&config.Instance{Name: "VI_1"})
	c.setState("VI_1", true, vrrp.Fault) // a sync group of the same name: not followed
	c.setState("VI_1", false, vrrp.Backup)
	c.setState("VI_1", false, vrrp.Init)
	c.setState("VI_1", false, vrrp.Fault)
	c.setState("VI_1", false, vrrp.Stop) // Tandem stopping: stop does it
	if err := c.apply(config.Delta[*config.ConntrackSync]{Change: config.Unchanged, Old: a, New: a}); err != nil {
		t.Fatal(err)
	}
	c.setState("G", true, vrrp.Master)
	b := blk("eth3", "", "G")
	if err := c.apply(config.Delta[*config.ConntrackSync]{Change: config.Recreated, Old: a, New: b}); err != nil {
		t.Fatal(err)
	}
	c.takeover(&config.Instance{Name: "VI_3", SyncGroup: "G"})
	c.takeover(&config.Instance{Name: "VI_4"})
	if st := c.status(); st == nil || st.Follows != "sync_group G" || !st.Running {
		t.Errorf("status %+v", st)
	}
	c.stop()
	want := []string{"start eth2", "eth2 MASTER", "eth2 takeover", "eth2 BACKUP", "eth2 BACKUP", "eth2 FAULT",
		"stop eth2", "start eth3", "eth3 MASTER", "eth3 takeover", "stop eth3"}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if st := c.status(); st != nil {
		t.Errorf("status after stop: %+v", st)
	}
	err := c.apply(config.Delta[*config.ConntrackSync]{Change: config.Added, New: blk("missing", "VI_1", "")})
	if !errors.Is(err, ctsync.ErrNotInstalled) || c.status() != nil {
		t.Errorf("conntrackd missing: %v, status %+v", err, c.status())
	}
}
