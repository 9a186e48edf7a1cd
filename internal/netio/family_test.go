package netio

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"tandem/internal/config"
)

// TestExcludedOtherFamilyReachKernel: the addresses of an IPv4 instance's
// virtual_ipaddress_excluded may be IPv6 (issue 12 item 3); each is added
// over netlink in its own family and found and removed again.
func TestExcludedOtherFamilyReachKernel(t *testing.T) {
	l := oneNode(t)
	cfg, diags := config.Parse("t.conf", []byte(`vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.10/24
    }
    virtual_ipaddress_excluded {
        fd00:1::10/64
    }
}
`), config.Options{ConfigID: "x"})
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	in := cfg.Instances[0]
	if in.IPv6 {
		t.Fatal("the instance is IPv4")
	}
	a := in.ExcludedVIPs[0]
	var before, after, gone bool
	err := l.Do("n", func() error {
		var err error
		if before, err = HasAddress(in.Interface, a); err != nil {
			return err
		}
		if err := AddAddress(in.Interface, a); err != nil {
			return err
		}
		if after, err = HasAddress(in.Interface, a); err != nil {
			return err
		}
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, x := range addrs {
			if ip, _ := netip.AddrFromSlice(x.IP); ip == a.Prefix.Addr() {
				ones, _ := x.Mask.Size()
				after = after && ones == 64
			}
		}
		if err := DelAddress(in.Interface, a); err != nil {
			return err
		}
		has, err := HasAddress(in.Interface, a)
		gone = !has
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if before || !after || !gone {
		t.Errorf("fd00:1::10/64 on eth0: before add %t, after add %t, gone after delete %t; want false, true, true", before, after, gone)
	}
}
