package ipvs

import (
	"bufio"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"tandem/internal/lab"
	"tandem/internal/lvs"
)

// newSyncerIn opens a Syncer in node's namespace.
func newSyncerIn(t *testing.T, l *lab.Lab, node string) *Syncer {
	t.Helper()
	var s *Syncer
	if err := l.Do(node, func() (err error) {
		s, err = NewSyncer()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ipvsConn is one line of /proc/net/ip_vs_conn.
type ipvsConn struct {
	Client, VIP, Dest netip.AddrPort
	State             string
}

// connTable reads node's IPVS connection table, which generic netlink
// does not offer. /proc/net follows the process's namespace; the thread's
// is under /proc/thread-self.
func connTable(t *testing.T, l *lab.Lab, node string) []ipvsConn {
	t.Helper()
	var text []byte
	if err := l.Do(node, func() (err error) {
		text, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
	// TCP AC100764 A1B2 AC100705 0050 AC100703 0050 ESTABLISHED 899
	// (addresses and ports in hex, most significant byte first)
	hexAddr := func(ip, port string) netip.AddrPort {
		b, err1 := hex.DecodeString(ip)
		p, err2 := strconv.ParseUint(port, 16, 16)
		if err1 != nil || err2 != nil || len(b) != 4 {
			t.Fatalf("ip_vs_conn: bad address %s:%s in\n%s", ip, port, text)
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b)), uint16(p))
	}
	var out []ipvsConn
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Pro" {
			continue
		}
		out = append(out, ipvsConn{Client: hexAddr(f[1], f[2]), VIP: hexAddr(f[3], f[4]), Dest: hexAddr(f[5], f[6]), State: f[7]})
	}
	return out
}

// TestSyncDaemonReplicatesConnections runs IPVS's master sync daemon on one
// director and the backup on another, both with the same DR service, and
// shows the connections a client makes through the first appearing in
// the second's connection table, which never saw a packet of them.
func TestSyncDaemonReplicatesConnections(t *testing.T) {
	requireIPVS(t)
	y, l := drLab(t)
	svc := lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: y.VIPs[0], Port: 80}, Scheduler: lvs.RoundRobin, Method: lvs.DR}
	want := mustDesired(t, lvs.VirtualServer{Service: svc, Dests: []lvs.Dest{
		{Addr: netip.AddrPortFrom(y.Reals[0].Addr, 80), Weight: 1},
		{Addr: netip.AddrPortFrom(y.Reals[1].Addr, 80), Weight: 1}}})
	for _, dir := range []string{"dir1", "dir2"} {
		k := newKernel(t, l, dir, "")
		reconcile(t, lvs.NewReconciler(k, k.Owns), want)
	}

	master, backup := newSyncerIn(t, l, "dir1"), newSyncerIn(t, l, "dir2")
	m := SyncDaemon{State: SyncMaster, Interface: y.Iface, SyncID: 7}
	b := SyncDaemon{State: SyncBackup, Interface: y.Iface, SyncID: 7, Port: 8848, TTL: 1, Group: netip.MustParseAddr("224.0.0.81")}
	if err := master.Start(m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Stop(SyncMaster) })
	if err := backup.Start(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backup.Stop(SyncBackup) })
	if err := master.Start(m); !errors.Is(err, unix.EEXIST) {
		t.Errorf("a second master daemon: %v, want EEXIST", err)
	}

	// Read back: the kernel fills in its defaults (and sizes the payload
	// from eth0's MTU, 1500 - 20 - 8); ipvsadm, which reads the kernel
	// independently, agrees.
	for _, c := range []struct {
		node string
		s    *Syncer
		want SyncDaemon
		adm  string
	}{
		{"dir1", master, SyncDaemon{State: SyncMaster, Interface: y.Iface, SyncID: 7, MaxLen: 1472, Port: 8848, TTL: 1,
			Group: netip.MustParseAddr("224.0.0.81")}, "master sync daemon (mcast=eth0, syncid=7"},
		{"dir2", backup, SyncDaemon{State: SyncBackup, Interface: y.Iface, SyncID: 7, MaxLen: 1472, Port: 8848, TTL: 1,
			Group: netip.MustParseAddr("224.0.0.81")}, "backup sync daemon (mcast=eth0, syncid=7"},
	} {
		got, err := c.s.Daemons()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]SyncDaemon{c.want}, got, cmpOpts); diff != "" {
			t.Errorf("%s: Daemons (-want +got):\n%s", c.node, diff)
		}
		if out := run(t, l, c.node, "ipvsadm", "-L", "--daemon"); !strings.Contains(out, c.adm) {
			t.Errorf("%s: ipvsadm -L --daemon:\n%s\nwant %q", c.node, out, c.adm)
		}
	}
	if got := connTable(t, l, "dir2"); len(got) != 0 {
		t.Fatalf("dir2 has connections before any traffic: %+v", got)
	}

	// Held connections through dir1, each with a few packets of data
	// (IPVS syncs a TCP connection as it becomes established and again
	// at its sync_threshold'th packet).
	const n = 4
	want2 := map[netip.AddrPort]netip.AddrPort{} // client -> real server
	for range n {
		c, who, err := dial(l, netip.AddrPortFrom(y.VIPs[0], 80))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			if _, err := c.Write([]byte("ping\n")); err != nil {
				t.Fatal(err)
			}
		}
		rs := y.Reals[0].Addr
		if who == y.Reals[1].Name {
			rs = y.Reals[1].Addr
		}
		want2[netip.MustParseAddrPort(c.LocalAddr().(*net.TCPAddr).String())] = netip.AddrPortFrom(rs, 80)
	}

	// The master flushes its buffer within IPVS_SYNC_FLUSH_TIME (2 s).
	start := time.Now()
	var synced []ipvsConn
	for deadline := start.Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		synced = synced[:0]
		for _, c := range connTable(t, l, "dir2") {
			if _, ok := want2[c.Client]; ok {
				synced = append(synced, c)
			}
		}
		if len(synced) == n || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("dir2 holds %d of the %d connections after %v: %+v", len(synced), n, time.Since(start).Round(time.Millisecond), synced)
	if len(synced) != n {
		t.Fatalf("dir2's connection table has %d of the %d connections through dir1; dir1's: %+v", len(synced), n, connTable(t, l, "dir1"))
	}
	for _, c := range synced {
		if c.VIP != netip.AddrPortFrom(y.VIPs[0], 80) || c.Dest != want2[c.Client] || c.State != "ESTABLISHED" {
			t.Errorf("synced %+v, want %v -> %v via %v, ESTABLISHED", c, c.Client, netip.AddrPortFrom(y.VIPs[0], 80), want2[c.Client])
		}
	}

	// A daemon stopped right after it started (a quick VRRP flap) gets
	// no answer from the kernel (see syncTimeout); Stop still reports it
	// stopped, in bounded time, and it is.
	for i := range 10 {
		t0 := time.Now()
		if err := master.Start(SyncDaemon{State: SyncBackup, Interface: y.Iface, SyncID: 7}); err != nil {
			t.Fatal(err)
		}
		if err := master.Stop(SyncBackup); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Logf("cycle %d: start and stop took %v (no answer to the stop)", i, d.Round(time.Millisecond))
		}
	}
	if ds, err := master.Daemons(); err != nil || len(ds) != 1 || ds[0].State != SyncMaster {
		t.Errorf("dir1 after the start-stop cycles: %+v, %v; want its master only", ds, err)
	}

	// A failover swaps the daemons: each director stops one and starts
	// the other, as the daemon does on a VRRP transition.
	if err := master.Stop(SyncMaster); err != nil {
		t.Fatal(err)
	}
	if err := master.Stop(SyncMaster); !errors.Is(err, unix.ESRCH) {
		t.Errorf("stopping a stopped daemon: %v, want ESRCH", err)
	}
	if err := backup.Stop(SyncBackup); err != nil {
		t.Fatal(err)
	}
	if err := master.Start(SyncDaemon{State: SyncBackup, Interface: y.Iface, SyncID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := backup.Start(SyncDaemon{State: SyncMaster, Interface: y.Iface, SyncID: 7}); err != nil {
		t.Fatal(err)
	}
	for node, s := range map[string]*Syncer{"dir1": master, "dir2": backup} {
		got, err := s.Daemons()
		if err != nil {
			t.Fatal(err)
		}
		wantState := SyncBackup
		if node == "dir2" {
			wantState = SyncMaster
		}
		if len(got) != 1 || got[0].State != wantState {
			t.Errorf("%s after the swap: %+v, want one %v daemon", node, got, wantState)
		}
		if err := s.Stop(wantState); err != nil {
			t.Error(err)
		}
		if got, err := s.Daemons(); err != nil || len(got) != 0 {
			t.Errorf("%s after stopping: %+v, %v; want none", node, got, err)
		}
	}
}
