package daemon

import (
	"net"
	"slices"

	"tandem/internal/config"
	"tandem/internal/lvs/xdp"
)

// vipInterfaces names the interfaces that carry cfg's VIPs, where
// clients' packets for them arrive: each VRRP instance's interface (and
// its use_vmac interface, which holds the VIPs then), and the dev of
// every virtual_ipaddress (and _excluded) that names one; sorted, each
// once.
func vipInterfaces(cfg *config.Config) []string {
	var out []string
	for _, in := range cfg.Instances {
		out = append(out, in.Interface)
		if in.VMAC != nil {
			out = append(out, in.VMAC.Name)
		}
		for _, a := range slices.Concat(in.VIPs, in.ExcludedVIPs) {
			out = append(out, a.Dev)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return slices.DeleteFunc(out, func(n string) bool { return n == "" })
}

// clientInterfaces has the XDP data plane attach its program to the
// interfaces that carry cfg's VIPs too, not only to those that reach the
// real servers: a client's packets may come in elsewhere (from a router,
// on the VRRP instance's interface), and the program must see them
// before the director's stack, which holds the VIP, answers them itself.
// An interface not there (yet) is logged and left out until the next
// reload.
func (b *balancer) clientInterfaces(cfg *config.Config) {
	k, ok := b.kernel.(*xdp.Kernel)
	if !ok {
		return
	}
	var names []string
	for _, n := range vipInterfaces(cfg) {
		if _, err := net.InterfaceByName(n); err != nil {
			b.log.Warn("lvs/xdp: a VIP's interface is missing; the program is not attached there", "interface", n, "err", err)
			continue
		}
		names = append(names, n)
	}
	if err := k.SetInterfaces(names...); err != nil {
		b.log.Error("lvs/xdp: attach to the VIPs' interfaces", "err", err)
	}
}
