package api

import (
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
