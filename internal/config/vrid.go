package config

import (
	"net/netip"
	"slices"
)

// validateVRIDs refuses two instances that would take each other's
// advertisements, as keepalived defines it (vrrp.c check_vrid_conflicts):
// the same VRID, interface and family, and either both multicast to the
// same group, or both unicast from the same source address to a common
// peer. Unicast and multicast are separate VRID spaces; different groups
// or disjoint peer sets are too (RFC 3768 §5.3.3 makes a VRID unique on a
// LAN, and these are different conversations on it).
func (p *parser) validateVRIDs(cfg *Config) {
	type vridKey struct {
		iface string
		ipv6  bool
		vrid  int
	}
	seen := map[vridKey][]*Instance{}
	for _, in := range cfg.Instances {
		if in.VRID == 0 || in.Interface == "" {
			continue
		}
		k := vridKey{in.Interface, in.IPv6, in.VRID}
		for _, other := range seen[k] {
			if why, clash := vridClash(&cfg.Global, other, in); clash {
				p.errorf(in.Pos, "vrrp_instance %s: virtual_router_id %d is already used on %s by vrrp_instance %s (%s), %s; keepalived refuses this too (a VRID must be unique per interface, family and %s)", in.Name, in.VRID, in.Interface, other.Name, other.Pos, why, vridScope(in))
				break
			}
		}
		seen[k] = append(seen[k], in)
	}
}

func vridScope(in *Instance) string {
	if len(in.UnicastPeers) > 0 {
		return "unicast source and peer"
	}
	return "multicast group"
}

// vridClash reports whether a and b (same VRID, interface and family)
// collide, and how.
func vridClash(g *Global, a, b *Instance) (string, bool) {
	if (len(a.UnicastPeers) > 0) != (len(b.UnicastPeers) > 0) {
		return "", false
	}
	if len(a.UnicastPeers) == 0 {
		ga, gb := vrrpGroup(g, a), vrrpGroup(g, b)
		return "multicasting to the same group " + ga.String(), ga == gb
	}
	// A source that is not configured is the interface's address, the
	// same for both; a configured one may or may not be that address,
	// which keepalived compares at run time: here only two equal
	// configurations are known to collide.
	if vrrpSource(a) != vrrpSource(b) {
		return "", false
	}
	for _, pa := range a.UnicastPeers {
		if slices.ContainsFunc(b.UnicastPeers, func(pb UnicastPeer) bool { return pb.Addr == pa.Addr }) {
			return "from the same source to the same unicast peer " + pa.Addr.String(), true
		}
	}
	return "", false
}

// vrrpGroup is the multicast group an instance advertises to.
func vrrpGroup(g *Global, in *Instance) netip.Addr {
	switch {
	case in.McastDstIP.IsValid():
		return in.McastDstIP
	case in.IPv6:
		return g.VRRPMcastGroup6
	}
	return g.VRRPMcastGroup4
}

// vrrpSource is the configured source address (unicast_src_ip, else
// mcast_src_ip, which keepalived reads into the same field), or none.
func vrrpSource(in *Instance) netip.Addr {
	if in.UnicastSrcIP.IsValid() {
		return in.UnicastSrcIP
	}
	return in.McastSrcIP
}
