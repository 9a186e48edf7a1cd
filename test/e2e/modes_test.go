package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestIPv6 runs VRRPv3 over IPv6 (adverts from the link-local address to
// ff02::12) with an IPv6 VIP: election, a client reaching the VIP, and a
// crash failover after which the client's neighbour entry points at the
// backup (the unsolicited neighbour advertisement arrived).
func TestIPv6(t *testing.T) {
	spec := lab.Seed001().Spec()
	for i, n := range spec.Nodes {
		if n.Name == "client" {
			spec.Nodes[i].Ifaces[0].Addrs = append(spec.Nodes[i].Ifaces[0].Addrs, netip.MustParsePrefix("fd00:1::50/64"))
		}
	}
	l := lab.NewT(t, spec)
	conf := func(prio int) string {
		return fmt.Sprintf(`vrrp_instance VI_6 {
    interface ens33
    virtual_router_id 66
    priority %d
    version 3
    advert_int 0.5
    virtual_ipaddress {
        fd00:1::100/64
    }
}
`, prio)
	}
	vip := netip.MustParseAddr("fd00:1::100")
	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", conf(100)))
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", conf(90)))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_6") == "MASTER" && ka2.state("VI_6") == "BACKUP" })
	if in := ka2.instance(t, "VI_6"); len(in.Dropped) > 0 || in.AdvertsReceived == 0 {
		t.Errorf("backup: received %d, dropped %v", in.AdvertsReceived, in.Dropped)
	}
	if err := l.Ping("client", vip, 3*time.Second); err != nil {
		t.Fatalf("client to the IPv6 VIP on the master: %v", err)
	}
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka2 MASTER", 5*time.Second, func() bool { return ka2.state("VI_6") == "MASTER" })
	mac := macOf(t, l, "ka2", "ens33").String()
	waitFor(t, "the client's IPv6 neighbour entry to point at ka2", 3*time.Second, func() bool {
		return neighbourMAC(t, l, "client", vip).String() == mac
	})
	if err := l.Ping("client", vip, 3*time.Second); err != nil {
		t.Fatalf("client to the IPv6 VIP on the backup: %v", err)
	}
}

// TestUnicast runs seed001's pair with unicast_peer and unicast_src_ip
// instead of multicast: election, crash failover, preemption on return.
func TestUnicast(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	conf := func(prio int, src, peer string) string {
		return vrrpConf(2, prio, "1", fmt.Sprintf("    unicast_src_ip %s\n    unicast_peer {\n        %s\n    }", src, peer))
	}
	ka1conf := writeConf(t, "ka1.conf", conf(100, "192.168.1.4", "192.168.1.8"))
	ka1 := startTandem(t, l, "ka1", ka1conf)
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", conf(90, "192.168.1.8", "192.168.1.4")))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })
	if in := ka2.instance(t, "VI_1"); in.MasterIP != "192.168.1.4" || len(in.Dropped) > 0 {
		t.Errorf("backup: master %q, dropped %v", in.MasterIP, in.Dropped)
	}
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka2 MASTER", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	if err := l.Ping("client", vip001, 3*time.Second); err != nil {
		t.Fatalf("client to the VIP on the backup: %v", err)
	}
	ka1 = startTandem(t, l, "ka1", ka1conf)
	waitFor(t, "ka1 MASTER again", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })
}
