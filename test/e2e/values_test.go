package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestInteropIPv6WithoutVersion: an IPv6 instance with no version line is
// VRRPv3 in Tandem as in keepalived (issue 12 item 2), so the same
// configuration on both elects one master, whichever side holds it.
func TestInteropIPv6WithoutVersion(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	conf := func(prio int) string {
		return fmt.Sprintf(`vrrp_instance VI_6 {
    interface ens33
    virtual_router_id 66
    priority %d
    advert_int 1
    virtual_ipaddress {
        fd00:1::100/64
    }
}
`, prio)
	}
	vip := netip.MustParseAddr("fd00:1::100")
	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", conf(100)))
	ka2 := startKeepalived(t, l, "ka2", writeConf(t, "ka2.conf", conf(90)))
	waitFor(t, "Tandem MASTER, keepalived BACKUP", 15*time.Second, func() bool {
		return ka1.state("VI_6") == "MASTER" && ka2.lastState("VI_6") == "BACKUP"
	})
	if in := ka1.instance(t, "VI_6"); len(in.Dropped) > 0 {
		t.Errorf("Tandem dropped keepalived's packets: %v", in.Dropped)
	}
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "keepalived MASTER after Tandem's crash", 10*time.Second, func() bool {
		return ka2.lastState("VI_6") == "MASTER" && holds(t, l, "ka2", "ens33", vip)
	})
}
