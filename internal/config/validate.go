package config

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

// ifNameMax is IFNAMSIZ-1: the longest interface name or address label the
// kernel accepts (15 bytes).
const ifNameMax = 15

// validate checks what no single keyword can: references between blocks,
// duplicates, families, and the range rules that depend on other keywords.
func (p *parser) validate(cfg *Config) {
	p.validateNames(cfg)
	p.validateInstances(cfg)
	p.validateSyncGroups(cfg)
	p.validateTrackGroups(cfg)
	p.validateServers(cfg)
	p.finalizeSyncDaemon(cfg)
	p.finalizeConntrackSync(cfg)
	p.validateFIFOs(&cfg.Global.Ops)
	p.validateBFD(cfg)
	p.finalizeBGP(cfg)
}

// validateNames rejects two definitions with one name: the later one would
// silently shadow the earlier in keepalived.
func (p *parser) validateNames(cfg *Config) {
	type named struct {
		kind, name string
		pos        Pos
	}
	var all []named
	for _, s := range cfg.Scripts {
		all = append(all, named{"vrrp_script", s.Name, s.Pos})
	}
	for _, f := range cfg.TrackFiles {
		all = append(all, named{"vrrp_track_file", f.Name, f.Pos})
	}
	for _, t := range cfg.TrackProcesses {
		all = append(all, named{"vrrp_track_process", t.Name, t.Pos})
	}
	for _, g := range cfg.SyncGroups {
		all = append(all, named{"vrrp_sync_group", g.Name, g.Pos})
	}
	for _, in := range cfg.Instances {
		all = append(all, named{"vrrp_instance", in.Name, in.Pos})
	}
	for _, g := range cfg.ServerGroups {
		all = append(all, named{"virtual_server_group", g.Name, g.Pos})
	}
	for _, b := range cfg.BFDInstances {
		all = append(all, named{"bfd_instance", b.Name, b.Pos})
	}
	seen := map[[2]string]Pos{}
	for _, n := range all {
		k := [2]string{n.kind, n.name}
		if first, dup := seen[k]; dup {
			p.errorf(n.pos, "%s %s is defined twice (first at %s)", n.kind, n.name, first)
			continue
		}
		seen[k] = n.pos
	}
}

func (p *parser) validateInstances(cfg *Config) {
	p.validateVRIDs(cfg)
	for _, in := range cfg.Instances {
		name := "vrrp_instance " + in.Name
		if in.Interface == "" {
			p.errorf(in.Pos, "%s: interface is required", name)
		} else if len(in.Interface) > ifNameMax {
			p.errorf(in.Pos, "%s: interface name %q is longer than %d bytes", name, in.Interface, ifNameMax)
		}
		if in.VRID == 0 {
			p.errorf(in.Pos, "%s: virtual_router_id is required (1..255)", name)
		}
		p.validateAdvertInt(in, name)
		if in.IPv6 && in.Version == 2 {
			p.errorf(in.Pos, "%s: VRRPv2 is IPv4 only (RFC 3768); use version 3 for IPv6", name)
		}
		if in.Auth != nil && in.Version == 3 {
			p.warnf(in.Pos, "%s: VRRPv3 has no authentication (RFC 5798 §9); the authentication block is ignored", name)
		}
		if in.Auth != nil && in.Auth.Pass == "" {
			p.errorf(in.Pos, "%s: authentication needs an auth_pass", name)
		}
		if len(in.VIPs) == 0 && !in.NoVirtualIPAddr {
			p.warnf(in.Pos, "%s: no virtual_ipaddress", name)
		}
		for _, a := range in.VIPs {
			p.validateFamily(in, a, name)
			p.validateAddress(in, a, name)
		}
		// keepalived.conf(5): virtual_ipaddress_excluded may hold
		// addresses of either family; they are not advertised.
		for _, a := range in.ExcludedVIPs {
			p.validateAddress(in, a, name)
		}
		for _, peer := range in.UnicastPeers {
			if peer.Addr.Is6() != in.IPv6 {
				p.errorf(peer.Pos, "%s: unicast_peer %s is not of the instance's address family", name, peer.Addr)
			}
		}
		for _, a := range []struct {
			kw   string
			addr netip.Addr
		}{{"unicast_src_ip", in.UnicastSrcIP}, {"mcast_src_ip", in.McastSrcIP}, {"mcast_dst_ip", in.McastDstIP}} {
			if a.addr.IsValid() && a.addr.Is6() != in.IPv6 {
				p.errorf(in.Pos, "%s: %s %s is not of the instance's address family", name, a.kw, a.addr)
			}
		}
		if in.McastDstIP.IsValid() && !in.McastDstIP.IsMulticast() {
			p.errorf(in.Pos, "%s: mcast_dst_ip %s is not a multicast address", name, in.McastDstIP)
		}
		if in.Priority == 255 && in.State == StateBackup {
			p.warnf(in.Pos, "%s: priority 255 makes this router the address owner, which always starts as MASTER (RFC 3768 §6.4.1)", name)
		}
		if in.Priority == 255 && !in.Preempt {
			p.warnf(in.Pos, "%s: nopreempt has no effect on the address owner (priority 255)", name)
		}
		p.validateTrackRefs(cfg, name, in.TrackScripts, in.TrackFiles, in.TrackProcesses)
		p.validateBFDRefs(cfg, name, in.TrackBFD)
	}
}

// validateAdvertInt applies the per-version range: VRRPv2 carries whole
// seconds in 8 bits (RFC 3768 §5.3.7), VRRPv3 centiseconds in 12 bits
// (RFC 5798 §5.2.7: 0.01 .. 40.95 s).
func (p *parser) validateAdvertInt(in *Instance, name string) {
	d := time.Duration(in.AdvertInt)
	switch in.Version {
	case 2:
		if d%time.Second != 0 || d < time.Second || d > 255*time.Second {
			p.errorf(in.Pos, "%s: advert_int %s is not valid for VRRPv2, which carries whole seconds 1..255 (RFC 3768 §5.3.7); use version 3 for sub-second intervals", name, in.AdvertInt.Seconds())
		}
	case 3:
		if d%(10*time.Millisecond) != 0 {
			p.errorf(in.Pos, "%s: advert_int %s is not a whole number of centiseconds (RFC 5798 §5.2.7)", name, in.AdvertInt.Seconds())
		}
		if d > maxAdvertInt {
			p.errorf(in.Pos, "%s: advert_int %s is above VRRPv3's maximum of 40.95 s (12-bit centiseconds, RFC 5798 §5.2.7)", name, in.AdvertInt.Seconds())
		}
	}
}

// validateFamily checks that a virtual_ipaddress is of the instance's
// family: one advertisement carries one family.
func (p *parser) validateFamily(in *Instance, a *IPAddress, name string) {
	if a.Prefix.Addr().Is6() != in.IPv6 {
		fam := "IPv4"
		if in.IPv6 {
			fam = "IPv6"
		}
		p.errorf(a.Pos, "%s: %s is not %s like the instance's first address; an instance advertises one family (put other families in their own instance or in virtual_ipaddress_excluded)", name, a.Prefix.Addr(), fam)
	}
}

func (p *parser) validateAddress(in *Instance, a *IPAddress, name string) {
	dev := a.Dev
	if dev == "" {
		dev = in.Interface
	}
	if a.Label == "" {
		return
	}
	// The kernel wants a label to begin with the device name
	// (net/ipv4/devinet.c) and to fit IFNAMSIZ.
	if len(a.Label) > ifNameMax {
		p.errorf(a.Pos, "%s: label %q is longer than %d bytes", name, a.Label, ifNameMax)
	}
	if !strings.HasPrefix(a.Label, dev) {
		p.errorf(a.Pos, "%s: label %q must begin with the interface name %q (for example %s:1)", name, a.Label, dev, dev)
	}
	if a.Prefix.Addr().Is6() {
		p.errorf(a.Pos, "%s: IPv6 addresses cannot have a label", name)
	}
}

func (p *parser) validateTrackRefs(cfg *Config, owner string, scripts, files, procs []TrackRef) {
	check := func(kind string, refs []TrackRef, has func(string) bool) {
		for _, r := range refs {
			if !has(r.Name) {
				p.errorf(r.Pos, "%s: %s %q is not defined", owner, kind, r.Name)
			}
		}
	}
	check("vrrp_script", scripts, func(n string) bool {
		return slices.ContainsFunc(cfg.Scripts, func(s *Script) bool { return s.Name == n })
	})
	check("vrrp_track_file", files, func(n string) bool {
		return slices.ContainsFunc(cfg.TrackFiles, func(f *TrackFile) bool { return f.Name == n })
	})
	check("vrrp_track_process", procs, func(n string) bool {
		return slices.ContainsFunc(cfg.TrackProcesses, func(t *TrackProcess) bool { return t.Name == n })
	})
}

func (p *parser) validateSyncGroups(cfg *Config) {
	for _, g := range cfg.SyncGroups {
		name := "vrrp_sync_group " + g.Name
		for _, m := range g.Members {
			i := slices.IndexFunc(cfg.Instances, func(in *Instance) bool { return in.Name == m })
			switch {
			case i < 0:
				p.errorf(g.Pos, "%s: vrrp_instance %q is not defined", name, m)
			case cfg.Instances[i].SyncGroup != "":
				p.errorf(g.Pos, "%s: vrrp_instance %s is already in vrrp_sync_group %s", name, m, cfg.Instances[i].SyncGroup)
			default:
				cfg.Instances[i].SyncGroup = g.Name
			}
		}
		if len(g.Members) == 1 {
			p.warnf(g.Pos, "%s: a sync group of one instance does nothing", name)
		}
		p.validateTrackRefs(cfg, name, g.TrackScripts, g.TrackFiles, g.TrackProcesses)
		p.validateBFDRefs(cfg, name, g.TrackBFD)
	}
}

func (p *parser) validateServers(cfg *Config) {
	type service struct {
		name  string
		proto Protocol
	}
	seen := map[service]*VirtualServer{}
	for _, vs := range cfg.VirtualServers {
		key := service{vs.Name(), vs.Protocol}
		if other, dup := seen[key]; dup {
			p.errorf(vs.Pos, "virtual_server %s %s is defined twice (first at %s)", vs.Name(), vs.Protocol, other.Pos)
			continue
		}
		seen[key] = vs
		p.validateVS(cfg, vs)
	}
}

func (p *parser) validateVS(cfg *Config, vs *VirtualServer) {
	name := "virtual_server " + vs.Name()
	if vs.Group != "" && !slices.ContainsFunc(cfg.ServerGroups, func(g *ServerGroup) bool { return g.Name == vs.Group }) {
		p.errorf(vs.Pos, "%s: virtual_server_group %q is not defined", name, vs.Group)
	}
	byIP := vs.Group == "" && vs.FWMark == 0
	if byIP && vs.Port == 0 && vs.Persistence == 0 {
		// check_data.c: "zero port only valid for persistent services".
		p.warnf(vs.Pos, "%s: port 0 (all ports) only works with persistence; persistence_timeout %d set as keepalived does", name, int(defaultPersistence.Seconds()))
		vs.Persistence = Duration(defaultPersistence)
	}
	if !byIP && vs.Protocol != ProtocolUnset && vs.Group == "" {
		p.warnf(vs.Pos, "%s: protocol is ignored for fwmark services", name)
		vs.Protocol = ProtocolUnset
	}
	if vs.HASuspend && vs.FWMark != 0 {
		p.errorf(vs.Pos, "%s: ha_suspend cannot be used with a fwmark service (no address to follow)", name)
	}
	p.schedFlags(vs, name, byIP)
	if t := vs.unset.granularity; t != nil {
		p.granularity(vs, name, *t)
	}
	if ss := vs.SorryServer; ss != nil && !ss.IP.IsValid() {
		p.errorf(ss.Pos, "%s: sorry_server_inhibit or sorry_server_lvs_method given without a sorry_server address", name)
	}
	if vs.Hysteresis >= vs.Quorum {
		p.errorf(vs.Pos, "%s: hysteresis %d must be below quorum %d", name, vs.Hysteresis, vs.Quorum)
	}
	weights := 0
	seen := map[netip.AddrPort]*RealServer{}
	for _, rs := range vs.RealServers {
		weights += rs.Weight
		k := netip.AddrPortFrom(rs.IP, uint16(rs.Port))
		if other, dup := seen[k]; dup {
			p.errorf(rs.Pos, "%s: real_server %s is defined twice (first at %s)", name, k, other.Pos)
		}
		seen[k] = rs
		if byIP && rs.IP.Is6() != vs.IP.Is6() && rs.Method != TUN {
			p.errorf(rs.Pos, "%s: real_server %s is of another address family, which only TUN can forward to", name, rs.IP)
		}
		if rs.LThreshold > 0 && rs.UThreshold > 0 && rs.LThreshold > rs.UThreshold {
			p.errorf(rs.Pos, "%s: real_server %s: lthreshold %d is above uthreshold %d", name, rs.IP, rs.LThreshold, rs.UThreshold)
		}
		for _, c := range rs.Checkers {
			if c.File != nil && !slices.ContainsFunc(cfg.TrackFiles, func(f *TrackFile) bool { return f.Name == c.File.TrackFile }) {
				p.errorf(c.Pos, "%s: FILE_CHECK: vrrp_track_file %q is not defined", name, c.File.TrackFile)
			}
			if c.UDP != nil && c.UDP.MinReply > c.UDP.MaxReply {
				p.errorf(c.Pos, "%s: UDP_CHECK: min_reply_length %d is above max_reply_length %d", name, c.UDP.MinReply, c.UDP.MaxReply)
			}
		}
	}
	if len(vs.RealServers) > 0 && vs.Quorum > weights {
		p.warnf(vs.Pos, "%s: quorum %d exceeds the real servers' total weight %d and could never be met; reduced to %d as keepalived does", name, vs.Quorum, weights, weights)
		vs.Quorum = max(weights, 1)
		if vs.Hysteresis >= vs.Quorum {
			vs.Hysteresis = vs.Quorum - 1
		}
	}
}

// schedFlags resolves the flag keywords now that lb_algo is known: sh-*
// and mh-* need their scheduler, and ops needs UDP.
func (p *parser) schedFlags(vs *VirtualServer, name string, byIP bool) {
	for _, t := range vs.unset.schedFlags {
		f := t.Text
		switch {
		case strings.HasPrefix(f, "sh-") && vs.Scheduler != SchedulerSH:
			p.errorf(t.Pos, "%s: %s needs lb_algo sh, not %s", name, f, vs.Scheduler)
		case strings.HasPrefix(f, "mh-") && vs.Scheduler != SchedulerMH:
			p.errorf(t.Pos, "%s: %s needs lb_algo mh, not %s", name, f, vs.Scheduler)
		case f == "ops" && byIP && vs.Protocol != UDP:
			p.errorf(t.Pos, "%s: ops (one-packet scheduling) needs protocol UDP", name)
		}
		switch f {
		case "ops":
			vs.SchedFlags |= SchedOnePacket
		case "sh-fallback", "mh-fallback", "flag-1":
			vs.SchedFlags |= SchedFallback
		case "sh-port", "mh-port", "flag-2":
			vs.SchedFlags |= SchedPort
		case "hashed":
			vs.SchedFlags |= SchedHashed
		case "flag-3":
			vs.SchedFlags |= SchedFlag3
		}
	}
}

// granularity reads the persistence netmask now that the family is known:
// a dotted IPv4 mask or an IPv6 prefix length 1..128 (keepalived
// check_parser.c pgr_handler). Any IPv4 mask is taken, as keepalived
// does ("ipvsadm doesn't [force a solid netmask] and the kernel doesn't
// require it either"): IPVS applies it bitwise, and so do Tandem's planes.
func (p *parser) granularity(vs *VirtualServer, name string, t syntax.Token) {
	if vs.Family == Inet6 {
		n, err := strconv.Atoi(t.Text)
		if err != nil || n < 1 || n > 128 {
			p.errorf(t.Pos, "%s: persistence_granularity %q is not an IPv6 prefix length 1..128", name, t.Text)
			return
		}
		vs.Granularity, _ = netip.AddrFromSlice(net.CIDRMask(n, 128))
		return
	}
	m, err := netip.ParseAddr(t.Text)
	if err != nil || !m.Is4() {
		p.errorf(t.Pos, "%s: persistence_granularity %q is not an IPv4 netmask like 255.255.255.0", name, t.Text)
		return
	}
	vs.Granularity = m
}
