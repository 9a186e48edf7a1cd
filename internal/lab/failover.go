package lab

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// DRPairConf is the configuration of a Seed004 DR director pair for
// connection-survival runs (test/e2e, bench/conns): seed004's instance
// (VRID 51, VIP 172.16.0.30/24 on enp0s3, dir1 MASTER at priority 100,
// dir2 BACKUP at 50) at advert_int 0.1 with VRRPv3 (VRRPv2 carries whole
// seconds), and its virtual server (DR, TCP_CHECK on rs1 and rs2 port 80)
// with wrr instead of rr, so that the real servers' weights, as given,
// count.
type DRPairConf struct {
	Weights [2]int // rs1's and rs2's; 0 means 1
}

// DRPairVIP is DRPairConf's virtual server.
var DRPairVIP = netip.AddrPortFrom(netip.MustParseAddr("172.16.0.30"), 80)

// Conf is the configuration of director node, dir1 or dir2.
func (c DRPairConf) Conf(node string) string {
	state, prio := "BACKUP", 50
	if node == "dir1" {
		state, prio = "MASTER", 100
	}
	w := c.Weights
	for i := range w {
		w[i] = max(w[i], 1)
	}
	return fmt.Sprintf(`global_defs {
    router_id %s
}
vrrp_instance VI_1 {
    state %s
    interface enp0s3
    virtual_router_id 51
    priority %d
    advert_int 0.1
    version 3
    virtual_ipaddress {
        172.16.0.30/24
    }
}
virtual_server 172.16.0.30 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 172.16.0.31 80 {
        weight %d
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 172.16.0.32 80 {
        weight %d
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`, node, state, prio, w[0], w[1])
}

// Crash takes director node and its daemon p down as a machine failure
// does: its ports on every switch are cut (so its kernel, which keeps the
// VIP and the data plane's rules after the process dies, forwards and
// replicates nothing more) and p's whole process group gets SIGKILL, one
// right after the other.
func (l *Lab) Crash(node string, p *Proc) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	for _, sw := range slices.Sorted(maps.Keys(n.ports)) {
		if err := l.Partition(sw, node); err != nil {
			return err
		}
	}
	return p.Kill()
}
