package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestWriteTextSyncDaemon(t *testing.T) {
	for _, tt := range []struct {
		sd   *SyncDaemonStatus
		want string
	}{
		{nil, ""},
		{&SyncDaemonStatus{Interface: "eth1", Instance: "VI_1", SyncID: 51, Running: []string{"master"}},
			"Sync daemon: master on eth1 (syncid 51, following VI_1)\n"},
		{&SyncDaemonStatus{Interface: "eth1", SyncID: 0, Running: []string{"master", "backup"}},
			"Sync daemon: master and backup on eth1 (syncid 0, master and backup always)\n"},
		{&SyncDaemonStatus{Interface: "eth1", Instance: "VI_1", SyncID: 51, Running: []string{}, Error: "the data plane is nft"},
			"Sync daemon: none running on eth1 (syncid 51, following VI_1): the data plane is nft\n"},
	} {
		var b strings.Builder
		if err := WriteText(&b, Status{SyncDaemon: tt.sd}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimPrefix(b.String(), "\n"); got != tt.want {
			t.Errorf("WriteText with %+v:\n%q\nwant\n%q", tt.sd, got, tt.want)
		}
	}
}

// TestWriteTextVMAC: `tandem status` names an instance's use_vmac
// interface beside its interface.
func TestWriteTextVMAC(t *testing.T) {
	st := Status{Instances: []InstanceStatus{
		{Name: "VI_1", State: "MASTER", VRID: 51, Interface: "eth0", VMAC: "vrrp.51", Priority: 100, EffectivePriority: 100},
		{Name: "VI_2", State: "BACKUP", VRID: 52, Interface: "eth1", Priority: 100, EffectivePriority: 100},
	}}
	var b strings.Builder
	if err := WriteText(&b, st, statusT0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "eth0 (vmac vrrp.51)") || strings.Contains(lines[2], "vmac") {
		t.Errorf("status table does not show VI_1's vmac (only):\n%s", b.String())
	}
}

// TestStatusShowsReason: `tandem status` and its JSON show why each
// instance is in its state, and since when.
func TestStatusShowsReason(t *testing.T) {
	st := Status{Instances: []InstanceStatus{
		{Name: "VI_1", State: "MASTER", VRID: 51, Interface: "eth0", Priority: 100, EffectivePriority: 100,
			Since: statusT0.Add(-90 * time.Second), Reason: "advert timeout from 10.0.0.11"},
		{Name: "VI_2", State: "INIT", VRID: 52, Interface: "eth1", Priority: 100, EffectivePriority: 100},
	}}
	var b strings.Builder
	if err := WriteText(&b, st, statusT0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasSuffix(strings.TrimSpace(lines[0]), "REASON") ||
		!strings.Contains(lines[1], "1m30s") || !strings.HasSuffix(lines[1], "advert timeout from 10.0.0.11") ||
		!strings.HasSuffix(strings.TrimSpace(lines[2]), "-") {
		t.Errorf("status table does not show the reasons:\n%s", b.String())
	}
	js, err := json.Marshal(st.Instances[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"reason":"advert timeout from 10.0.0.11"`) || !strings.Contains(string(js), `"since":"2026-11-22T04:58:30Z"`) {
		t.Errorf("JSON status lacks the reason or its time: %s", js)
	}
}

// TestWriteTextConntrackd: `tandem status` shows whether conntrackd runs,
// why not, and its last command's result.
func TestWriteTextConntrackd(t *testing.T) {
	for _, tt := range []struct {
		ct   *ConntrackdStatus
		want string
	}{
		{&ConntrackdStatus{Follows: "instance VI_1", Running: true, Role: "MASTER", Command: "conntrackd -B"},
			"conntrackd: running (following instance VI_1, MASTER, 0 restarts); last command conntrackd -B: ok\n"},
		{&ConntrackdStatus{Follows: "sync_group G", Restarts: 2, Role: "BACKUP", Error: "conntrackd exited (status 1, signal 0)",
			Command: "conntrackd -n", CommandError: "exit status 1"},
			"conntrackd: not running (following sync_group G, BACKUP, 2 restarts): conntrackd exited (status 1, signal 0); last command conntrackd -n: exit status 1\n"},
	} {
		var b strings.Builder
		if err := WriteText(&b, Status{Conntrackd: tt.ct}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimPrefix(b.String(), "\n"); got != tt.want {
			t.Errorf("WriteText with %+v:\n%q\nwant\n%q", tt.ct, got, tt.want)
		}
	}
}

// TestWriteTextDraining: `tandem status` shows a draining instance's
// remaining drain beside its state, and only there.
func TestWriteTextDraining(t *testing.T) {
	st := Status{Instances: []InstanceStatus{
		{Name: "VI_1", State: "BACKUP", VRID: 51, Interface: "eth0", Priority: 200, EffectivePriority: 200,
			Reason: "handover", DrainingUntil: statusT0.Add(4200 * time.Millisecond)},
		{Name: "VI_2", State: "BACKUP", VRID: 52, Interface: "eth1", Priority: 100, EffectivePriority: 100},
	}}
	var b strings.Builder
	if err := WriteText(&b, st, statusT0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "BACKUP (draining 4.2s)") || strings.Contains(lines[2], "draining") {
		t.Errorf("status table does not show VI_1's drain (only):\n%s", b.String())
	}
}
