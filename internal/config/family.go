package config

// An instance's address family and VRRP version, decided as keepalived
// decides them (vrrp_parser.c, vrrp_data.c alloc_vrrp_vip and
// alloc_vrrp_unicast_peer, vrrp.c vrrp_complete_instance): the first
// address written in the block among virtual_ipaddress, unicast_peer,
// unicast_src_ip, mcast_src_ip and mcast_dst_ip sets the family; addresses
// of the other family in those keywords are errors (validate.go).
// virtual_ipaddress_excluded does not take part: it may hold either family.
// With no address at all the instance is IPv4.

// familyKeywords read an address that can decide the family, each with the
// first address it stored.
var familyKeywords = map[string]func(in *Instance) (ipv6, ok bool){
	"virtual_ipaddress": func(in *Instance) (bool, bool) {
		if len(in.VIPs) == 0 {
			return false, false
		}
		return in.VIPs[0].Prefix.Addr().Is6(), true
	},
	"unicast_peer": func(in *Instance) (bool, bool) {
		if len(in.UnicastPeers) == 0 {
			return false, false
		}
		return in.UnicastPeers[0].Addr.Is6(), true
	},
	"unicast_src_ip": func(in *Instance) (bool, bool) { return in.UnicastSrcIP.Is6(), in.UnicastSrcIP.IsValid() },
	"mcast_src_ip":   func(in *Instance) (bool, bool) { return in.McastSrcIP.Is6(), in.McastSrcIP.IsValid() },
	"mcast_dst_ip":   func(in *Instance) (bool, bool) { return in.McastDstIP.Is6(), in.McastDstIP.IsValid() },
}

// familyFromFirst wraps the handlers of familyKeywords in hs so that the
// first of them to store an address records the instance's family.
func (p *parser) familyFromFirst(in *Instance, hs map[string]handler) {
	for kw, first := range familyKeywords {
		h := hs[kw]
		hs[kw] = func(n *node) {
			h(n)
			if in.unset.ipv6 != nil {
				return
			}
			if v6, ok := first(in); ok {
				in.unset.ipv6 = &v6
			}
		}
	}
}

// finalizeFamily sets the family and the version. An IPv6 instance
// without a version line is VRRPv3 whatever vrrp_version says, since
// VRRPv2 is IPv4 only (RFC 3768 §1; RFC 5798 §1): keepalived does so
// silently, Tandem says so when vrrp_version would have said otherwise.
func (p *parser) finalizeFamily(in *Instance, g *Global) {
	if in.unset.ipv6 != nil {
		in.IPv6 = *in.unset.ipv6
	}
	if in.Version >= 0 {
		return
	}
	in.Version = g.VRRPVersion
	if in.IPv6 && in.Version == 2 {
		p.warnf(in.Pos, "vrrp_instance %s: IPv6 instance without a version line: VRRPv3, as keepalived does (VRRPv2 is IPv4 only; vrrp_version 2 applies to IPv4 instances)", in.Name)
		in.Version = 3
	}
}
