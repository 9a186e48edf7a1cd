package e2e

import (
	"net/netip"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestSeedPairsVRRP runs the VRRP part of every seed's master/backup pair,
// configurations unmodified, on the seed's own layout: the master owns the
// VIP and the client reaches it; the master crashes and the backup does.
// (The virtual_server blocks are read and reported as not served yet.)
func TestSeedPairsVRRP(t *testing.T) {
	for _, c := range []struct {
		name           string
		layout         lab.Layout
		master, backup string // node names
		mconf, bconf   string
		instance       string
		vip            string
	}{
		{"seed000", lab.Seed000(), "dir1", "dir2", "seed000-lvs-dr-master.conf", "seed000-lvs-dr-backup.conf", "VI_1", "172.16.7.5"},
		{"seed002", lab.Seed002(), "dir1", "dir2", "seed002-lvs-dr-http-master.conf", "seed002-lvs-dr-http-backup.conf", "vi_1", "172.18.42.42"},
		{"seed003-nginx-ha", lab.Seed003DR(), "dir1", "rs1", "seed003-nginx-ha-master.conf", "seed003-nginx-ha-backup.conf", "VI_1", "192.168.188.100"},
		{"seed004", lab.Seed004(), "dir1", "dir2", "seed004-lvs-dr-master.conf", "seed004-lvs-dr-backup.conf", "VI_1", "172.16.0.30"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := lab.NewT(t, c.layout.Spec())
			vip := netip.MustParseAddr(c.vip)
			m := startTandem(t, l, c.master, seedConf(t, c.mconf))
			b := startTandem(t, l, c.backup, seedConf(t, c.bconf))
			waitFor(t, "master MASTER, backup BACKUP", 15*time.Second, func() bool {
				return m.state(c.instance) == "MASTER" && b.state(c.instance) == "BACKUP"
			})
			if err := l.Ping("client", vip, 3*time.Second); err != nil {
				t.Fatalf("client to the VIP on the master: %v", err)
			}
			if err := m.proc.Kill(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "backup MASTER", 10*time.Second, func() bool { return b.state(c.instance) == "MASTER" })
			if err := l.Ping("client", vip, 5*time.Second); err != nil {
				t.Fatalf("client to the VIP on the backup: %v", err)
			}
		})
	}
}
