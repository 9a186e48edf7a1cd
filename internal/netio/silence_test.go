package netio

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// TestSilence: a host that keeps a VIP but silences it answers no ARP or
// neighbour solicitation for it (a peer cannot resolve, so cannot ping
// it), still answers for its other addresses, and answers for the VIP
// again once the silence is lifted.
func TestSilence(t *testing.T) {
	lab.RequireRoot(t)
	iface := func(a ...string) []lab.Iface {
		var ps []netip.Prefix
		for _, s := range a {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		return []lab.Iface{{Name: "eth0", Switch: "s", Addrs: ps}}
	}
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "d", Ifaces: iface("192.0.2.1/24", "2001:db8::1/64")},
		{Name: "c", Ifaces: iface("192.0.2.2/24", "2001:db8::2/64")},
	}})
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")}
	flush := func() {
		t.Helper()
		if err := l.Do("c", func() error {
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			for _, f := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
				ns, err := netlink.NeighList(link.Attrs().Index, f)
				if err != nil {
					return err
				}
				for _, n := range ns {
					netlink.NeighDel(&n)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Do("d", func() error {
		for _, v := range vips {
			bits := 24
			if v.Is6() {
				bits = 64
			}
			if err := AddAddress("eth0", &config.IPAddress{Prefix: netip.PrefixFrom(v, bits), NoDAD: v.Is6()}); err != nil {
				return err
			}
		}
		return Silence(vips)
	}); err != nil {
		t.Fatal(err)
	}
	for _, v := range vips {
		if err := l.Ping("c", v, 1500*time.Millisecond); err == nil {
			t.Errorf("%v answered while silenced", v)
		}
	}
	for _, a := range []string{"192.0.2.1", "2001:db8::1"} {
		if err := l.Ping("c", netip.MustParseAddr(a), 3*time.Second); err != nil {
			t.Errorf("the host's own %s is silenced too: %v", a, err)
		}
	}
	if err := l.Do("d", func() error { return Silence(nil) }); err != nil {
		t.Fatal(err)
	}
	flush()
	for _, v := range vips {
		if err := l.Ping("c", v, 3*time.Second); err != nil {
			t.Errorf("%v does not answer once the silence is lifted: %v", v, err)
		}
	}
}
