package daemon

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
	"tandem/internal/notify"
	"tandem/internal/vrrp"
)

// TestReloadFIFOs: a reload that leaves the FIFO settings alone keeps the
// open FIFOs (a reader sees no break); one that changes them closes the old
// ones, removing what Tandem created, and opens the new.
func TestReloadFIFOs(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	mk := func(path string) *config.Config {
		cfg := &config.Config{}
		cfg.Global.VRRPNotifyFIFO = config.FIFO{Path: path, Pos: config.Pos{Line: len(path)}}
		return cfg
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "bb")
	cfg := mk(a)
	fx := newEffects(cfg, log)
	var err error
	if fx.fifos, err = notify.OpenFIFOs(&cfg.Global.Ops, fx.users, log); err != nil {
		t.Fatal(err)
	}
	same := mk(a)
	same.Global.VRRPNotifyFIFO.Pos.Line = 99 // moved in the file: the same FIFO
	fx2 := newEffects(same, log)
	if err := reloadFIFOs(fx, fx2, cfg, same, log); err != nil || fx2.fifos != fx.fifos {
		t.Fatalf("unchanged settings: FIFOs reopened (%v)", err)
	}
	other := mk(b)
	fx3 := newEffects(other, log)
	if err := reloadFIFOs(fx2, fx3, same, other, log); err != nil || fx3.fifos == fx2.fifos {
		t.Fatalf("changed settings: FIFOs kept (%v)", err)
	}
	defer fx3.fifos.Close()
	if _, err := os.Lstat(a); !os.IsNotExist(err) {
		t.Errorf("old FIFO %s not removed: %v", a, err)
	}
	if _, err := os.Lstat(b); err != nil {
		t.Errorf("new FIFO %s not created: %v", b, err)
	}
}

// TestWriteStatesOnReload: with fifo_write_vrrp_states_on_reload, the
// instances a reload kept or updated in place, and their sync groups,
// have their states written; a new instance (which writes its own as it
// starts) is not; without the keyword nothing is written.
func TestWriteStatesOnReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	log := slog.New(slog.DiscardHandler)
	cfg := &config.Config{
		Instances:  []*config.Instance{{Name: "VI_1"}, {Name: "VI_2"}, {Name: "VI_NEW"}},
		SyncGroups: []*config.SyncGroup{{Name: "G"}},
	}
	cfg.Global.VRRPNotifyFIFO.Path = path
	fx := newEffects(cfg, log)
	var err error
	if fx.fifos, err = notify.OpenFIFOs(&cfg.Global.Ops, fx.users, log); err != nil {
		t.Fatal(err)
	}
	defer fx.fifos.Close()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep := vrrp.ReloadReport{Kept: []string{"VI_1"}, Updated: []string{"VI_2"}, Started: []string{"VI_NEW"}}
	st := []vrrp.InstanceStatus{
		{Name: "VI_1", State: vrrp.Master, EffectivePriority: 100, SyncGroup: "G"},
		{Name: "VI_2", State: vrrp.Master, EffectivePriority: 90, SyncGroup: "G"},
		{Name: "VI_NEW", State: vrrp.Backup, EffectivePriority: 50},
	}
	writeStatesOnReload(fx, cfg, rep, st) // keyword not set: nothing
	cfg.Global.FIFOWriteStatesOnReload = true
	writeStatesOnReload(fx, cfg, rep, st)
	want := []string{"GROUP \"G\" MASTER 0\n", "INSTANCE \"VI_1\" MASTER 100\n", "INSTANCE \"VI_2\" MASTER 90\n"}
	r := bufio.NewReader(f)
	var got []string
	if err := f.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for range want {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, l)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("lines (-want +got):\n%s", d)
	}
	// Nothing more: VI_NEW's line would be next.
	if err := f.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err == nil {
		t.Errorf("unexpected line %q", l)
	}
}

func TestGroupState(t *testing.T) {
	for _, c := range []struct {
		in   []vrrp.State
		want vrrp.State
		ok   bool
	}{
		{nil, 0, false},
		{[]vrrp.State{vrrp.Master, vrrp.Master}, vrrp.Master, true},
		{[]vrrp.State{vrrp.Backup, vrrp.Backup}, vrrp.Backup, true},
		{[]vrrp.State{vrrp.Master, vrrp.Fault}, vrrp.Fault, true},
		{[]vrrp.State{vrrp.Master, vrrp.Backup}, 0, false},
	} {
		if got, ok := groupState(c.in); got != c.want || ok != c.ok {
			t.Errorf("groupState(%v) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// fifoDaemon is a daemon with one instance, VI_1, whose vrrp_notify_fifo
// the returned reader reads (for a second at most per line).
func fifoDaemon(t *testing.T) (*Daemon, *config.Instance, *bufio.Reader) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	log := slog.New(slog.DiscardHandler)
	cfg := &config.Config{Instances: []*config.Instance{{Name: "VI_1"}}}
	cfg.Global.VRRPNotifyFIFO.Path = path
	d := &Daemon{cfg: cfg, fx: newEffects(cfg, log), notes: notify.NewRunner(0, log), events: notify.NewEventLog(8), masters: map[string]bool{}, opts: Options{Log: log}}
	t.Cleanup(func() { d.notes.Close(context.Background()) })
	var err error
	if d.fx.fifos, err = notify.OpenFIFOs(&cfg.Global.Ops, d.fx.users, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.fx.fifos.Close)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return d, cfg.Instances[0], bufio.NewReader(f)
}

// TestMasterRxLowerPriToFIFO: an instance's MASTER_RX_LOWER_PRI event
// goes to the VRRP FIFO as keepalived writes it, and is not a state
// change (no event log entry, mastership unchanged).
func TestMasterRxLowerPriToFIFO(t *testing.T) {
	d, in, r := fifoDaemon(t)
	d.stateChanged(vrrp.StateChange{Instance: in, State: vrrp.Master, Priority: 150, MasterRxLowerPri: true})
	l, err := r.ReadString('\n')
	if err != nil || l != "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 150\n" {
		t.Errorf("FIFO line %q, %v", l, err)
	}
	if len(d.events.Events()) != 0 || len(d.masters) != 0 {
		t.Errorf("taken as a state change: events %v, masters %v", d.events.Events(), d.masters)
	}
}

// A priority change (notify_priority_changes) is written to the notify
// FIFOs as keepalived writes it and recorded in the event log; it is not a
// state change and runs no notify script.
func TestPriorityChangeEvent(t *testing.T) {
	d, in, r := fifoDaemon(t)
	in.Notify = config.Notify{Any: []string{"/nonexistent/notify"}}
	d.stateChanged(vrrp.StateChange{Instance: in, State: vrrp.Master, Priority: 90, At: time.Now(), PriorityChange: true})
	d.stateChanged(vrrp.StateChange{Instance: in, State: vrrp.Backup, Priority: 80, At: time.Now(), PriorityChange: true})
	for _, want := range []string{"INSTANCE \"VI_1\" MASTER_PRIORITY 90\n", "INSTANCE \"VI_1\" BACKUP_PRIORITY 80\n"} {
		if l, err := r.ReadString('\n'); err != nil || l != want {
			t.Errorf("FIFO line %q, %v; want %q", l, err, want)
		}
	}
	var got []string
	for _, e := range d.events.Events() {
		got = append(got, e.Object+": "+e.Message)
	}
	if want := []string{"instance VI_1: MASTER_PRIORITY 90", "instance VI_1: BACKUP_PRIORITY 80"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if len(d.masters) != 0 {
		t.Errorf("taken as a state change: masters %v", d.masters)
	}
}
