package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"tandem/internal/config"
	"tandem/internal/firewall"
	"tandem/internal/lab"
)

// strictConf is a vrrp_strict instance on seed001's ens33 (VRRPv3, no
// authentication: what strict mode allows) with nftables_counters, in
// table `table` ("" = the default), holding vips.
func strictConf(prio int, table string, vips ...string) string {
	name := ""
	if table != "" {
		name = "    nftables " + table + "\n"
	}
	list := ""
	for _, v := range vips {
		list += "        " + v + "/24 dev ens33\n"
	}
	return fmt.Sprintf(`global_defs {
    vrrp_strict
    nftables_counters
%s}
vrrp_instance VI_1 {
    state BACKUP
    interface ens33
    virtual_router_id 77
    priority %d
    advert_int 1
    version 3
    virtual_ipaddress {
%s    }
}
`, name, prio, list)
}

// fwState is a node's firewall table as the kernel holds it, read through
// the library: the IPv4 drop set's addresses, the packets its input drop
// rule counted, and the rules' handles. nil: no table.
type fwState struct {
	vips    []netip.Addr
	dropped uint64
	handles []uint64
}

func readFirewall(t *testing.T, l *lab.Lab, node, table string) *fwState {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(l.NSHandle(t, node))))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil || tb == nil {
		return nil
	}
	st := &fwState{}
	set, err := c.GetSetByName(tb, firewall.SetV4)
	if err != nil {
		t.Fatal(err)
	}
	es, err := c.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		a, _ := netip.AddrFromSlice(e.Key)
		st.vips = append(st.vips, a)
	}
	slices.SortFunc(st.vips, netip.Addr.Compare)
	for _, ch := range []string{firewall.ChainIn, firewall.ChainOut} {
		rules, err := c.GetRules(tb, &nftables.Chain{Name: ch, Table: tb})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			st.handles = append(st.handles, r.Handle)
			v4 := false
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Lookup:
					v4 = e.SetName == firewall.SetV4
				case *expr.Counter:
					if v4 && ch == firewall.ChainIn {
						st.dropped = e.Packets
					}
				}
			}
		}
	}
	return st
}

// TestStrictFirewall: keepalived's nftables mode under vrrp_strict (no
// accept). The master drops what is addressed to its VIPs (RFC 5798
// §6.4.3: not the address owner, Accept_Mode False), counted by
// nftables_counters, while its own address answers; the backup, which
// holds no VIP, has an empty drop set. A reload adding a VIP adds it to
// the set in place (rules and counters kept). After a failover the roles
// swap; a stopped director leaves no table; one restarted after a crash
// replaces the table the crash left.
func TestStrictFirewall(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	vip, vip2 := netip.MustParseAddr("192.168.1.100"), netip.MustParseAddr("192.168.1.101")
	ka1Conf := writeConf(t, "ka1.conf", strictConf(150, "", vip.String()))
	ka1 := startTandem(t, l, "ka1", ka1Conf)
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", strictConf(100, "kad", vip.String())))
	waitFor(t, "ka1 MASTER, ka2 BACKUP", 15*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP"
	})
	def := config.DefaultFirewallTable
	fw1, fw2 := readFirewall(t, l, "ka1", def), readFirewall(t, l, "ka2", "kad")
	if fw1 == nil || !slices.Equal(fw1.vips, []netip.Addr{vip}) {
		t.Fatalf("master's table inet %s: %+v, want the VIP in its drop set", def, fw1)
	}
	if fw2 == nil || len(fw2.vips) != 0 {
		t.Fatalf("backup's table inet kad: %+v, want an empty drop set", fw2)
	}

	// The VIP is on the master and the client's packets reach it; they
	// are dropped there and counted. The master's own address answers.
	if !holds(t, l, "ka1", "ens33", vip) {
		t.Fatal("the master does not hold the VIP")
	}
	if err := l.Ping("client", vip, 2*time.Second); err == nil {
		t.Error("the no-accept master answered a ping to its VIP")
	}
	if err := l.Ping("client", netip.MustParseAddr("192.168.1.4"), 3*time.Second); err != nil {
		t.Errorf("the master's own address: %v", err)
	}
	fw1 = readFirewall(t, l, "ka1", def)
	if fw1.dropped == 0 {
		t.Errorf("the master's drop counter is 0 after a ping to its VIP")
	}
	if fw2 = readFirewall(t, l, "ka2", "kad"); fw2.dropped != 0 {
		t.Errorf("the backup dropped %d packets; it holds no VIP", fw2.dropped)
	}

	// A reload adding a VIP: the set changes in place.
	before := fw1
	if err := os.WriteFile(ka1Conf, []byte(strictConf(150, "", vip.String(), vip2.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ka1.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second VIP in the master's drop set", 10*time.Second, func() bool {
		st := readFirewall(t, l, "ka1", def)
		return st != nil && slices.Equal(st.vips, []netip.Addr{vip, vip2})
	})
	fw1 = readFirewall(t, l, "ka1", def)
	if !slices.Equal(fw1.handles, before.handles) || fw1.dropped < before.dropped {
		t.Errorf("the reload rebuilt the table: rules %v -> %v, counter %d -> %d", before.handles, fw1.handles, before.dropped, fw1.dropped)
	}
	if err := l.Ping("client", vip2, 2*time.Second); err == nil {
		t.Error("the master answered a ping to the VIP the reload added")
	}

	// Failover: ka1 stops, its table goes; ka2 drops for the VIP now.
	if err := ka1.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := readFirewall(t, l, "ka1", def); st != nil {
		t.Errorf("the stopped director left its table: %+v", st)
	}
	waitFor(t, "ka2 MASTER", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	if fw2 = readFirewall(t, l, "ka2", "kad"); !slices.Equal(fw2.vips, []netip.Addr{vip}) {
		t.Fatalf("new master's drop set %v, want the VIP", fw2.vips)
	}
	ka2MAC := macOf(t, l, "ka2", "ens33")
	waitFor(t, "the client's neighbour entry for the VIP to point at ka2", 5*time.Second, func() bool {
		return neighbourMAC(t, l, "client", vip).String() == ka2MAC.String()
	})
	if err := l.Ping("client", vip, 2*time.Second); err == nil {
		t.Error("the new no-accept master answered a ping to its VIP")
	}
	if fw2 = readFirewall(t, l, "ka2", "kad"); fw2.dropped == 0 {
		t.Error("the new master's drop counter is 0 after a ping to its VIP")
	}

	// A crash leaves the table; the next run replaces it.
	if err := ka2.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	if st := readFirewall(t, l, "ka2", "kad"); st == nil || len(st.vips) != 1 {
		t.Fatalf("after SIGKILL the table is %+v; the test expects the crash to leave it", st)
	}
	ka2 = startTandem(t, l, "ka2", ka2.conf)
	waitFor(t, "ka2 MASTER again", 15*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	if st := readFirewall(t, l, "ka2", "kad"); st == nil || !slices.Equal(st.vips, []netip.Addr{vip}) || st.dropped != 0 {
		t.Errorf("after the restart: %+v, want a fresh table with the VIP", st)
	}
	if err := ka2.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if st := readFirewall(t, l, "ka2", "kad"); st != nil {
		t.Errorf("the stopped director left its table: %+v", st)
	}
}
