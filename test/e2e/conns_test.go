package e2e

import (
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"tandem/internal/api"
	"tandem/internal/lab"
)

// drPair builds seed004's layout with a line-echo server on each real
// server (VIP on lo) and runs a DR director pair with the given
// configurations, until dir1 is MASTER, dir2 BACKUP, and both real
// servers are healthy on both.
func drPair(t *testing.T, dp string, c1, c2 lab.DRPairConf) (l *lab.Lab, master, backup *daemon) {
	t.Helper()
	y := lab.Seed004()
	l = lab.NewT(t, y.Spec())
	flags := onPlane(t, l, y, dp)
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, lab.DRPairVIP.Addr())
		l.ServeT(t, rs, ":80", lab.NameEcho(rs))
	}
	m := startTandem(t, l, "dir1", writeConf(t, "dir1.conf", c1.Conf("dir1")), flags...)
	b := startTandem(t, l, "dir2", writeConf(t, "dir2.conf", c2.Conf("dir2")), flags...)
	const vs = "172.16.0.30:80"
	waitFor(t, "dir1 MASTER, dir2 BACKUP, both real servers healthy on both", 20*time.Second, func() bool {
		return m.state("VI_1") == "MASTER" && b.state("VI_1") == "BACKUP" &&
			m.healthy(vs, "172.16.0.31") && m.healthy(vs, "172.16.0.32") &&
			b.healthy(vs, "172.16.0.31") && b.healthy(vs, "172.16.0.32")
	})
	return l, m, b
}

// drPairConns runs drPair, calls backup (if not nil) with the lab, opens n
// long-lived connections from the client through the VIP, crashes the
// master (lab.Crash: switch port cut, SIGKILL), and returns what each
// connection saw once the backup has carried them for a while.
func drPairConns(t *testing.T, dp string, c1, c2 lab.DRPairConf, n int, backup func(*lab.Lab)) ([]lab.ConnResult, *daemon) {
	t.Helper()
	l, m, b := drPair(t, dp, c1, c2)
	vip := lab.DRPairVIP
	if backup != nil {
		backup(l)
	}
	cs, err := l.OpenConns("client", vip, n, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	before := cs.Results()
	if err := l.Crash("dir1", m.proc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dir2 MASTER", 10*time.Second, func() bool { return b.state("VI_1") == "MASTER" })
	// Every connection has answered twice since the crash, or failed.
	if err := cs.WaitPast(before, 2, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return cs.Stop(), b
}

// TestDRConnectionsSurviveFailover: long-lived TCP connections through a
// DR (nftables) director pair survive the master's crash. No state is
// shared between the directors: the backup's Maglev table, built from the
// same pool, sends every flow to the server the master did, and the real
// servers answer the client directly. The backup forwards the client's
// mid-connection segments from the netdev ingress hook, before conntrack,
// so nothing there sees them, let alone calls them INVALID.
//
// The backup has a firewall of the usual kind (conntrack's INVALID state
// dropped, after conntrack in prerouting) that counts what it sees for the
// VIP: it sees nothing, though the backup forwards every connection.
// On each DR data plane (XDP forwards before the stack too).
func TestDRConnectionsSurviveFailover(t *testing.T) { forPlanes(t, drConnectionsSurviveFailover) }

func drConnectionsSurviveFailover(t *testing.T, dp string) {
	var seen, invalid func() uint64
	res, b := drPairConns(t, dp, lab.DRPairConf{}, lab.DRPairConf{}, 20, func(l *lab.Lab) {
		seen, invalid = conntrackFirewall(t, l, "dir2", lab.DRPairVIP)
	})
	if forwarded(t, b) == 0 {
		t.Error("the backup forwarded nothing after the failover")
	}
	if n := seen(); n != 0 {
		t.Errorf("the backup's IP stack saw %d packets for the VIP's port: the DR path is not ahead of it", n)
	}
	if n := invalid(); n != 0 {
		t.Errorf("the backup's firewall dropped %d packets as conntrack INVALID", n)
	}
	var stall time.Duration
	for _, r := range res {
		stall = max(stall, r.MaxStall)
		if r.Err != nil {
			t.Errorf("connection from port %d to %s did not survive the failover: %v", r.Local.Port(), r.Server, r.Err)
		}
	}
	t.Logf("%d connections, longest stall %v", len(res), stall.Round(time.Millisecond))
}

// TestDRConnectionsFailoverControl shows the test above can fail: with a
// backup whose weights differ (rs2 9 times rs1's), its Maglev table
// differs from the master's and the flows whose slots changed hands reach
// a server that resets them.
func TestDRConnectionsFailoverControl(t *testing.T) {
	res, _ := drPairConns(t, "auto", lab.DRPairConf{}, lab.DRPairConf{Weights: [2]int{1, 9}}, 20, nil)
	broken := 0
	for _, r := range res {
		if r.Err != nil {
			broken++
		}
	}
	t.Logf("%d of %d connections broken by the backup's different table", broken, len(res))
	if broken == 0 {
		t.Error("no connection broke although the directors' tables differ: the survival test proves nothing")
	}
}

// conntrackFirewall installs in node a filter table of the kind operators
// run: in prerouting after conntrack, a counter of the TCP segments for
// vip (conntrack has seen each of them), then `ct state invalid drop`
// with a counter. It returns readers of both counters.
func conntrackFirewall(t *testing.T, l *lab.Lab, node string, vip netip.AddrPort) (seen, invalid func() uint64) {
	t.Helper()
	c := nsConn(t, l, node)
	tb := c.AddTable(&nftables.Table{Name: "e2e_fw", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "pre", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityConntrack + 1)})
	counters := map[string]*nftables.CounterObj{}
	for _, name := range []string{"seen", "invalid"} {
		counters[name] = c.AddObj(&nftables.CounterObj{Table: tb, Name: name}).(*nftables.CounterObj)
	}
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.Addr().AsSlice()},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(vip.Port() >> 8), byte(vip.Port())}},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: "seen"},
	}})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(1), Xor: make([]byte, 4)}, // NF_CT_STATE_INVALID_BIT
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: "invalid"},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("firewall in %s: %v", node, err)
	}
	read := func(name string) func() uint64 {
		return func() uint64 {
			t.Helper()
			o, err := c.GetObject(counters[name])
			if err != nil {
				t.Fatalf("read counter %s of %s: %v", name, node, err)
			}
			return o.(*nftables.CounterObj).Packets
		}
	}
	return read("seen"), read("invalid")
}

// TestDRReloadWeightKeepsConnections: a reload that gives rs2 nine times
// rs1's weight remaps most of rs1's Maglev slots to rs2; the master's flow
// table keeps rs1's established connections on rs1 (without it rs2 would
// reset them), while new connections follow the new table. On each DR
// data plane.
func TestDRReloadWeightKeepsConnections(t *testing.T) { forPlanes(t, drReloadWeightKeepsConnections) }

func drReloadWeightKeepsConnections(t *testing.T, dp string) {
	l, m, _ := drPair(t, dp, lab.DRPairConf{}, lab.DRPairConf{})
	cs, err := l.OpenConns("client", lab.DRPairVIP, 20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Stop()
	before := cs.Results()
	if err := os.WriteFile(m.conf, []byte(lab.DRPairConf{Weights: [2]int{1, 9}}.Conf("dir1")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rs2 at weight 9 in the master's table", 10*time.Second, func() bool {
		tb, err := api.FetchTable(t.Context(), m.socket)
		if err != nil {
			return false
		}
		for _, s := range tb.Services {
			for _, d := range s.Dests {
				if d.Address == "172.16.0.32:80" && d.Weight == 9 {
					return true
				}
			}
		}
		return false
	})
	if err := cs.WaitPast(before, 10, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	on := map[string]int{}
	for _, r := range cs.Stop() {
		on[r.Server]++
		if r.Err != nil {
			t.Errorf("connection from port %d to %s broke at the weight change: %v", r.Local.Port(), r.Server, r.Err)
		}
	}
	// 60 new connections: at 1:9 about 54 go to rs2 (45 or fewer is a
	// 4-sigma event), at the old 1:1 about 30.
	more, err := l.OpenConns("client", lab.DRPairVIP, 60, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fresh := map[string]int{}
	for _, r := range more.Stop() {
		fresh[r.Server]++
	}
	t.Logf("established at 1:1: %v; new at 1:9: %v", on, fresh)
	if on["rs1"] == 0 {
		t.Error("no connection was on rs1 before the change: the test proves nothing")
	}
	if fresh["rs2"] < 45 {
		t.Errorf("new connections at 1:9: %v, want most on rs2", fresh)
	}
}
