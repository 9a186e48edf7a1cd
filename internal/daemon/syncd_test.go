package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/lvs/ipvs"
	"tandem/internal/vrrp"
)

// fakeSyncKernel is IPVS's sync daemons as the kernel keeps them: one of
// each state at most, EEXIST and ESRCH as it answers.
type fakeSyncKernel struct {
	running map[ipvs.SyncState]ipvs.SyncDaemon
	calls   []string
	refuse  error // returned by the next Start
	closed  bool
}

func newFakeSyncKernel() *fakeSyncKernel {
	return &fakeSyncKernel{running: map[ipvs.SyncState]ipvs.SyncDaemon{}}
}

func (k *fakeSyncKernel) Start(d ipvs.SyncDaemon) error {
	k.calls = append(k.calls, fmt.Sprintf("start %v %s id %d port %d", d.State, d.Interface, d.SyncID, d.Port))
	if err := k.refuse; err != nil {
		k.refuse = nil
		return err
	}
	if _, ok := k.running[d.State]; ok {
		return unix.EEXIST
	}
	k.running[d.State] = d
	return nil
}

func (k *fakeSyncKernel) Stop(st ipvs.SyncState) error {
	k.calls = append(k.calls, fmt.Sprintf("stop %v", st))
	if _, ok := k.running[st]; !ok {
		return unix.ESRCH
	}
	delete(k.running, st)
	return nil
}

func (k *fakeSyncKernel) Daemons() ([]ipvs.SyncDaemon, error) {
	var out []ipvs.SyncDaemon
	for _, st := range syncOrder {
		if d, ok := k.running[st]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (k *fakeSyncKernel) Close() error { k.closed = true; return nil }

// takeCalls returns the calls since the last take.
func (k *fakeSyncKernel) takeCalls() []string {
	c := k.calls
	k.calls = nil
	return c
}

func syncConf(instance string, port int) *config.LVSSyncDaemon {
	return &config.LVSSyncDaemon{Interface: "eth1", Instance: instance, SyncID: 51, Port: port, TTL: 1,
		Group: netip.MustParseAddr("224.0.0.81")}
}

func newTestFollower(t *testing.T, dataplane string) (*syncFollower, *fakeSyncKernel, *int) {
	k := newFakeSyncKernel()
	opened := new(int)
	f := newSyncFollower(dataplane, func() (syncKernel, error) { *opened++; return k, nil }, slog.New(slog.DiscardHandler))
	return f, k, opened
}

func step(t *testing.T, k *fakeSyncKernel, what string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, k.takeCalls()); diff != "" {
		t.Errorf("%s: kernel calls (-want +got):\n%s", what, diff)
	}
}

// TestSyncFollowsInstance: the backup daemon runs from the start and in
// every state but MASTER (FAULT included); on MASTER the backup stops and
// then the master starts; at stop what runs is stopped.
func TestSyncFollowsInstance(t *testing.T) {
	f, k, _ := newTestFollower(t, DataplaneAuto)
	if w, err := f.configure(syncConf("VI_1", 8848)); err != nil || w != "" {
		t.Fatalf("configure: %q, %v", w, err)
	}
	step(t, k, "start", "start backup eth1 id 51 port 8848")
	f.setState("VI_2", true)
	step(t, k, "another instance becomes master")
	f.setState("VI_1", true)
	step(t, k, "VI_1 becomes master", "stop backup", "start master eth1 id 51 port 8848")
	f.setState("VI_1", true)
	step(t, k, "VI_1 master again (no change)")
	f.setState("VI_1", false) // FAULT, or BACKUP
	step(t, k, "VI_1 leaves master", "stop master", "start backup eth1 id 51 port 8848")
	if st := f.status(); st == nil || !cmp.Equal(st.Running, []string{"backup"}) || st.Error != "" || st.Instance != "VI_1" || st.SyncID != 51 {
		t.Errorf("status: %+v", st)
	}
	f.stop()
	step(t, k, "stop", "stop backup")
	if len(k.running) != 0 || !k.closed {
		t.Errorf("after stop: running %v, closed %v", k.running, k.closed)
	}
	if st := f.status(); st != nil {
		t.Errorf("status after stop: %+v", st)
	}
}

// TestSyncWithoutInstance: both daemons, for the process's life.
func TestSyncWithoutInstance(t *testing.T) {
	f, k, _ := newTestFollower(t, DataplaneIPVS)
	if _, err := f.configure(syncConf("", 8848)); err != nil {
		t.Fatal(err)
	}
	step(t, k, "start", "start master eth1 id 51 port 8848", "start backup eth1 id 51 port 8848")
	f.setState("VI_1", true)
	f.setState("VI_1", false)
	step(t, k, "instance transitions")
	if st := f.status(); !cmp.Equal(st.Running, []string{"master", "backup"}) {
		t.Errorf("status: %+v", st)
	}
	f.stop()
	step(t, k, "stop", "stop master", "stop backup")
}

// TestSyncReload: a reload restarts only the daemons whose settings
// changed; one naming another instance switches to that instance's state,
// known from the events before the reload; one without lvs_sync_daemon
// stops them.
func TestSyncReload(t *testing.T) {
	f, k, opened := newTestFollower(t, DataplaneAuto)
	f.setState("VI_2", true) // before lvs_sync_daemon is configured
	if _, err := f.configure(nil); err != nil {
		t.Fatal(err)
	}
	step(t, k, "not configured")
	if *opened != 0 {
		t.Errorf("IPVS opened %d times without lvs_sync_daemon", *opened)
	}
	f.configure(syncConf("VI_1", 8848))
	step(t, k, "added by a reload", "start backup eth1 id 51 port 8848")
	f.configure(syncConf("VI_1", 8848))
	step(t, k, "same settings")
	f.configure(syncConf("VI_1", 9000))
	step(t, k, "port changed", "stop backup", "start backup eth1 id 51 port 9000")
	f.configure(syncConf("VI_2", 9000))
	step(t, k, "follows VI_2, which is master", "stop backup", "start master eth1 id 51 port 9000")
	f.configure(nil)
	step(t, k, "removed", "stop master")
	if *opened != 1 {
		t.Errorf("IPVS opened %d times, want once", *opened)
	}
}

// TestSyncLeftovers: daemons running at start (a crashed run, ipvsadm)
// are stopped before Tandem starts its own.
func TestSyncLeftovers(t *testing.T) {
	f, k, _ := newTestFollower(t, DataplaneAuto)
	k.running[ipvs.SyncMaster] = ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth9", SyncID: 3}
	f.configure(syncConf("VI_1", 8848))
	step(t, k, "start", "stop master", "start backup eth1 id 51 port 8848")
}

// TestSyncKernelRefuses: a refused start is in the status and retried at
// the next transition; a daemon stopped by hand (ESRCH) is no error.
func TestSyncKernelRefuses(t *testing.T) {
	f, k, _ := newTestFollower(t, DataplaneAuto)
	k.refuse = unix.ENODEV
	f.configure(syncConf("VI_1", 8848))
	step(t, k, "start", "start backup eth1 id 51 port 8848")
	if st := f.status(); len(st.Running) != 0 || !strings.Contains(st.Error, unix.ENODEV.Error()) {
		t.Errorf("status after a refused start: %+v", st)
	}
	f.setState("VI_1", true)
	step(t, k, "master", "start master eth1 id 51 port 8848")
	delete(k.running, ipvs.SyncMaster) // ipvsadm --stop-daemon master
	f.setState("VI_1", false)
	step(t, k, "backup", "stop master", "start backup eth1 id 51 port 8848")
	if st := f.status(); !cmp.Equal(st.Running, []string{"backup"}) || st.Error != "" {
		t.Errorf("status: %+v", st)
	}
}

// TestSyncDataplanes: only kernel IPVS has sync daemons. With nftables or
// no data plane a configured daemon is a warning naming the data plane
// (IPVS is not even opened); with auto on a kernel without IPVS, a
// warning; with --dataplane ipvs there, an error.
func TestSyncDataplanes(t *testing.T) {
	for _, dp := range []string{DataplaneNFT, DataplaneNone} {
		f, k, opened := newTestFollower(t, dp)
		c := syncConf("VI_1", 8848)
		c.Pos = config.Pos{File: "k.conf", Line: 3, Col: 5}
		w, err := f.configure(c)
		if err != nil || !strings.Contains(w, "k.conf:3:5: lvs_sync_daemon eth1: not started: the data plane is "+dp) {
			t.Errorf("%s: warning %q, err %v", dp, w, err)
		}
		f.setState("VI_1", true)
		if *opened != 0 || len(k.calls) != 0 {
			t.Errorf("%s: IPVS opened %d times, calls %v", dp, *opened, k.calls)
		}
		if st := f.status(); st == nil || len(st.Running) != 0 || !strings.Contains(st.Error, "data plane is "+dp) {
			t.Errorf("%s: status %+v", dp, st)
		}
	}
	unavailable := func() (syncKernel, error) { return nil, fmt.Errorf("lvs/ipvs: %w", ipvs.ErrUnavailable) }
	f := newSyncFollower(DataplaneAuto, unavailable, slog.New(slog.DiscardHandler))
	if w, err := f.configure(syncConf("VI_1", 8848)); err != nil || !strings.Contains(w, "kernel IPVS is not available") {
		t.Errorf("auto without IPVS: warning %q, err %v", w, err)
	}
	f = newSyncFollower(DataplaneIPVS, unavailable, slog.New(slog.DiscardHandler))
	if _, err := f.configure(syncConf("VI_1", 8848)); !errors.Is(err, ipvs.ErrUnavailable) {
		t.Errorf("--dataplane ipvs without IPVS: %v, want ErrUnavailable", err)
	}
}

// TestSyncFollowsStateChanges: the daemon hands every instance's state
// change to the sync daemons (the wiring of stateChanged).
func TestSyncFollowsStateChanges(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	src := "global_defs {\n  lvs_sync_daemon eth1 VI_1\n}\nvrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n"
	if err := os.WriteFile(conf, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := load(Options{ConfigFile: conf, ConfigID: "t", Dataplane: DataplaneAuto, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	k := newFakeSyncKernel()
	d.syncd.open = func() (syncKernel, error) { return k, nil }
	if _, err := d.syncd.configure(d.cfg.Global.LVSSyncDaemon); err != nil {
		t.Fatal(err)
	}
	step(t, k, "start", "start backup eth1 id 51 port 8848")
	for _, c := range []struct {
		state vrrp.State
		want  []string
	}{
		{vrrp.Master, []string{"stop backup", "start master eth1 id 51 port 8848"}},
		{vrrp.Fault, []string{"stop master", "start backup eth1 id 51 port 8848"}},
		{vrrp.Master, []string{"stop backup", "start master eth1 id 51 port 8848"}},
		// Shutting down: no switch to the backup daemon on the way out.
		{vrrp.Stop, nil},
	} {
		d.stateChanged(vrrp.StateChange{Instance: d.cfg.Instances[0], State: c.state, At: time.Now()})
		step(t, k, c.state.String(), c.want...)
	}
	d.notes.Close(context.Background())
}
