package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

// BGP is the Tandem block bgp (keepalived has no such block; `tandem
// check` notes it): this director announces the VIPs of its virtual
// servers to routers over BGP, so that the routers spread the VIPs'
// traffic over every director that announces them (ECMP; docs/bgp.md).
// A VIP's host route is announced while it can be served here and
// withdrawn when it cannot.
type BGP struct {
	Pos Pos `json:"-"`
	// RouterID is the BGP identifier (RFC 4271 section 4.2), an IPv4
	// address unique among the speakers.
	RouterID netip.Addr `json:"router_id"`
	// LocalAS is this director's AS number (RFC 6793: four octets).
	LocalAS   uint32         `json:"local_as"`
	Neighbors []*BGPNeighbor `json:"neighbors"`
	// Announce lists the VIPs to announce; nil ("announce all", the
	// default) announces every virtual server's VIP.
	Announce []netip.Addr `json:"announce,omitempty"`
	// Communities are attached to every announced route (RFC 1997), each
	// ASN<<16 | value.
	Communities []uint32 `json:"communities,omitempty"`
	// MED is the MULTI_EXIT_DISC attribute (RFC 4271 section 5.1.4);
	// nil: not sent.
	MED *uint32 `json:"med,omitempty"`
	// GracefulShutdownDelay is how long the routes carry the
	// GRACEFUL_SHUTDOWN community (RFC 8326) before they are withdrawn
	// when Tandem stops.
	GracefulShutdownDelay Duration `json:"graceful_shutdown_delay"`
}

// BGPNeighbor is a neighbor block of bgp: a router this director peers
// with. Tandem dials it; it does not listen for connections (docs/bgp.md).
type BGPNeighbor struct {
	Pos      Pos        `json:"-"`
	Addr     netip.Addr `json:"address"`
	RemoteAS uint32     `json:"remote_as"`
	// Password is the TCP MD5 signature key (RFC 2385); empty: none.
	Password string `json:"-"`
	// Source is the local address of the session (zero: the kernel
	// picks).
	Source netip.Addr `json:"source_ip,omitzero"`
	// HoldTime (3 s or more) and KeepaliveTime (1 s or more, less than
	// HoldTime) are whole seconds (RFC 4271 section 4.2 and 10). RFC
	// 4271 also allows a hold time of 0 (no keepalives, no failure
	// detection); Tandem refuses it: a director that crashed would stay
	// in the routers' tables, and GoBGP reads 0 as its default, 90.
	HoldTime      Duration `json:"hold_time"`
	KeepaliveTime Duration `json:"keepalive_time"`
	// MultihopTTL is the TTL of the session's packets when the router is
	// not directly connected (eBGP multihop); 0: directly connected.
	MultihopTTL int `json:"multihop_ttl,omitempty"`
	// BFD names a bfd_instance to the same router: when that session
	// goes down the BGP session is reset (RFC 5882 section 4.3).
	BFD string `json:"bfd,omitempty"`
}

// BGP defaults and limits.
const (
	// RFC 4271 section 10 suggests 90 s and a third of it.
	bgpHoldDefault = 90
	// bgpMultihopTTL is multihop's TTL without an argument.
	bgpMultihopTTL = 255
	// bgpShutdownDelay gives the routers time to move the traffic away
	// before the withdraw.
	bgpShutdownDelay = Duration(5 * time.Second)
	bgpShutdownMax   = time.Hour
	bgpTimeMax       = 65535 // the OPEN message's hold time is 16 bits
	bgpPasswordMax   = 80    // TCP_MD5SIG_MAXKEYLEN
)

func (p *parser) bgp(n *node, cfg *Config) {
	if !p.args(n, 0, 0) {
		return
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	if prev := cfg.BGP; prev != nil {
		p.errorf(n.Keyword.Pos, "bgp: already given at %s (one speaker per director)", prev.Pos)
		return
	}
	b := &BGP{Pos: n.Keyword.Pos, GracefulShutdownDelay: bgpShutdownDelay}
	announceSet := false
	p.block("bgp", kids, map[string]handler{
		"router_id": p.setAddr(&b.RouterID),
		"local_as":  p.setAS(&b.LocalAS),
		"neighbor":  func(n *node) { p.bgpNeighbor(n, b) },
		"announce": func(n *node) {
			if announceSet {
				p.errorf(n.Keyword.Pos, "announce: already given")
				return
			}
			announceSet = true
			p.bgpAnnounce(n, b)
		},
		"community": p.bgpCommunities(&b.Communities),
		"med": func(n *node) {
			if v, ok := p.intArg(n, 0, 1<<32-1); ok {
				m := uint32(v)
				b.MED = &m
			}
		},
		"graceful_shutdown_delay": p.setDur(&b.GracefulShutdownDelay, 0, bgpShutdownMax),
	})
	switch {
	case !b.RouterID.IsValid():
		p.errorf(b.Pos, "bgp: router_id is missing: this director's BGP identifier, an IPv4 address")
	case !b.RouterID.Is4() || b.RouterID.IsUnspecified():
		p.errorf(b.Pos, "bgp: router_id %s is not a non-zero IPv4 address (RFC 4271 section 4.2)", b.RouterID)
	case b.LocalAS == 0:
		p.errorf(b.Pos, "bgp: local_as is missing")
	case len(b.Neighbors) == 0:
		p.errorf(b.Pos, "bgp: no neighbor: name the routers to announce the VIPs to")
	default:
		cfg.BGP = b
	}
}

// setAS reads an AS number, 1..4294967295 (RFC 6793).
func (p *parser) setAS(dst *uint32) handler {
	return func(n *node) {
		if v, ok := p.intArg(n, 1, 1<<32-1); ok {
			*dst = uint32(v)
		}
	}
}

// bgpNeighbor reads "neighbor ADDRESS { ... }".
func (p *parser) bgpNeighbor(n *node, b *BGP) {
	if !p.args(n, 1, 1) {
		return
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	addr, ok := p.addrTok(n, n.Args[0])
	if !ok {
		return
	}
	nb := &BGPNeighbor{Pos: n.Keyword.Pos, Addr: addr, HoldTime: Duration(bgpHoldDefault * time.Second)}
	where := "bgp neighbor " + addr.String()
	p.block("neighbor", kids, map[string]handler{
		"remote_as": p.setAS(&nb.RemoteAS),
		"password": func(n *node) {
			p.setStr(&nb.Password)(n)
			if len(nb.Password) > bgpPasswordMax {
				p.errorf(n.Args[0].Pos, "%s: password longer than %d bytes (the kernel's TCP MD5 key limit)", where, bgpPasswordMax)
			}
		},
		"source_ip":      p.setAddr(&nb.Source),
		"hold_time":      p.bgpSeconds(&nb.HoldTime, 3),
		"keepalive_time": p.bgpSeconds(&nb.KeepaliveTime, 1),
		"multihop": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 0, 1) {
				return
			}
			nb.MultihopTTL = bgpMultihopTTL
			if len(n.Args) == 1 {
				if v, ok := p.uintTok(n, n.Args[0], 1, 255); ok {
					nb.MultihopTTL = v
				}
			}
		},
		"bfd": p.setStr(&nb.BFD),
	})
	if nb.KeepaliveTime == 0 { // not given: a third of the hold time
		nb.KeepaliveTime = Duration(time.Duration(nb.HoldTime) / 3 / time.Second * time.Second)
	}
	switch {
	case nb.RemoteAS == 0:
		p.errorf(nb.Pos, "%s: remote_as is missing", where)
		return
	case nb.KeepaliveTime >= nb.HoldTime:
		p.errorf(nb.Pos, "%s: keepalive_time %s must be less than hold_time %s", where, nb.KeepaliveTime.Seconds(), nb.HoldTime.Seconds())
		return
	case nb.Source.IsValid() && nb.Source.Is4() != addr.Is4():
		p.errorf(nb.Pos, "%s: source_ip %s is not of the neighbor's family", where, nb.Source)
		return
	}
	for _, o := range b.Neighbors {
		if o.Addr == addr {
			p.errorf(nb.Pos, "%s: already given at %s", where, o.Pos)
			return
		}
	}
	b.Neighbors = append(b.Neighbors, nb)
}

// bgpSeconds reads a BGP timer: whole seconds, lo..65535.
func (p *parser) bgpSeconds(dst *Duration, lo int) handler {
	return func(n *node) {
		if v, ok := p.intArg(n, lo, bgpTimeMax); ok {
			*dst = Duration(time.Duration(v) * time.Second)
		}
	}
}

// bgpAnnounce reads "announce all" or "announce { VIP ... }".
func (p *parser) bgpAnnounce(n *node, b *BGP) {
	if !n.HasBlock {
		if p.args(n, 1, 1) {
			if _, ok := p.enumTok(n, n.Args[0], "all"); ok {
				b.Announce = nil
			}
		}
		return
	}
	if !p.args(n, 0, 0) {
		return
	}
	var vips []netip.Addr
	for _, k := range n.Block {
		if k.HasBlock {
			p.errorf(k.Keyword.Pos, "announce: unexpected block in the list of VIPs")
			continue
		}
		for _, t := range append([]syntax.Token{k.Keyword}, k.Args...) {
			a, ok := p.addrTok(n, t)
			switch {
			case !ok:
			case slices.Contains(vips, a):
				p.errorf(t.Pos, "announce: %s is listed twice", a)
			default:
				vips = append(vips, a)
			}
		}
	}
	if len(vips) == 0 {
		p.errorf(n.Keyword.Pos, "announce: no VIP listed (use \"announce all\" for every virtual server's)")
		return
	}
	b.Announce = vips
}

// bgpCommunities reads "community ASN:VALUE ..." (RFC 1997 standard
// communities, each half 0..65535); the lines add up.
func (p *parser) bgpCommunities(dst *[]uint32) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, -1) {
			return
		}
		for _, t := range n.Args {
			hi, lo, ok := strings.Cut(t.Text, ":")
			a, errA := strconv.ParseUint(hi, 10, 16)
			v, errV := strconv.ParseUint(lo, 10, 16)
			if !ok || errA != nil || errV != nil {
				p.errorf(t.Pos, "community: %q is not ASN:VALUE with both in 0..65535", t.Text)
				continue
			}
			*dst = append(*dst, uint32(a)<<16|uint32(v))
		}
	}
}

// BGPCommunity writes a standard community as "ASN:VALUE".
func BGPCommunity(c uint32) string { return fmt.Sprintf("%d:%d", c>>16, c&0xffff) }

// VIPs returns the addresses of the virtual servers, each once, in the
// configuration's order: a virtual server's IP, or the addresses of its
// virtual_server_group (ranges expanded); fwmark services have none.
func (c *Config) VIPs() []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, vs := range c.VirtualServers {
		for _, a := range c.vsAddrs(vs) {
			add(a)
		}
	}
	return out
}

// vsAddrs is the addresses vs serves.
func (c *Config) vsAddrs(vs *VirtualServer) []netip.Addr {
	if vs.IP.IsValid() {
		return []netip.Addr{vs.IP}
	}
	var out []netip.Addr
	for _, g := range c.ServerGroups {
		if g.Name != vs.Group {
			continue
		}
		for _, e := range g.Entries {
			if !e.IP.IsValid() {
				continue
			}
			last := e.IP
			if e.LastIP.IsValid() {
				last = e.LastIP
			}
			for a := e.IP; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
				out = append(out, a)
			}
		}
	}
	return out
}

// BGPAnnounced returns the VIPs the bgp block announces, each with the
// virtual servers that serve it: every VIP for "announce all", else those
// listed. Nil without a bgp block.
func (c *Config) BGPAnnounced() map[netip.Addr][]*VirtualServer {
	if c.BGP == nil {
		return nil
	}
	out := map[netip.Addr][]*VirtualServer{}
	for _, vs := range c.VirtualServers {
		for _, a := range c.vsAddrs(vs) {
			if c.BGP.Announce == nil || slices.Contains(c.BGP.Announce, a) {
				out[a] = append(out[a], vs)
			}
		}
	}
	return out
}

// finalizeBGP checks the bgp block against the rest of the file: its
// announced VIPs are virtual servers', none of them forwards by NAT (the
// replies would leave through the real servers' default route, not
// through the director the router chose), and each neighbor's bfd names
// a bfd_instance to that router.
func (p *parser) finalizeBGP(cfg *Config) {
	b := cfg.BGP
	if b == nil {
		return
	}
	vips := cfg.VIPs()
	for _, a := range b.Announce {
		if !slices.Contains(vips, a) {
			p.errorf(b.Pos, "bgp: announce: %s is not the address of any virtual_server", a)
		}
	}
	for a, vss := range cfg.BGPAnnounced() {
		for _, vs := range vss {
			if vsUsesNAT(vs) {
				p.errorf(vs.Pos, "virtual_server %s: NAT (its lb_kind, a real server's or the sorry server's) cannot be announced over BGP (bgp at %s announces %s): with several directors the replies bypass the one the router chose; use DR or TUN, or leave the VIP out of bgp's announce list", vs.Name(), b.Pos, a)
			}
		}
	}
	for _, nb := range b.Neighbors {
		if nb.BFD == "" {
			continue
		}
		switch f := cfg.BFD(nb.BFD); {
		case f == nil:
			p.errorf(nb.Pos, "bgp neighbor %s: bfd: bfd_instance %q is not defined", nb.Addr, nb.BFD)
		case f.Neighbor != nb.Addr:
			p.errorf(nb.Pos, "bgp neighbor %s: bfd: bfd_instance %s's neighbor_ip is %s, not this router", nb.Addr, nb.BFD, f.Neighbor)
		}
	}
}

// vsUsesNAT reports whether vs, one of its real servers or its sorry
// server forwards by NAT.
func vsUsesNAT(vs *VirtualServer) bool {
	return vs.Method == NAT || slices.ContainsFunc(vs.RealServers, func(rs *RealServer) bool { return rs.Method == NAT }) ||
		vs.SorryServer != nil && vs.SorryServer.Method == NAT
}

func (f *formatter) bgp(b *BGP) {
	if b == nil {
		return
	}
	f.open("bgp")
	f.addr("router_id", b.RouterID)
	f.line("local_as", strconv.FormatUint(uint64(b.LocalAS), 10))
	for _, nb := range b.Neighbors {
		f.open("neighbor", nb.Addr.String())
		f.line("remote_as", strconv.FormatUint(uint64(nb.RemoteAS), 10))
		f.str("password", nb.Password)
		f.addr("source_ip", nb.Source)
		f.dur("hold_time", nb.HoldTime)
		f.dur("keepalive_time", nb.KeepaliveTime)
		if nb.MultihopTTL != 0 {
			f.num("multihop", nb.MultihopTTL)
		}
		f.str("bfd", nb.BFD)
		f.close()
	}
	if b.Announce == nil {
		f.line("announce", "all")
	} else {
		f.open("announce")
		for _, a := range b.Announce {
			f.line(a.String())
		}
		f.close()
	}
	if len(b.Communities) > 0 {
		words := []string{"community"}
		for _, c := range b.Communities {
			words = append(words, BGPCommunity(c))
		}
		f.line(words...)
	}
	if b.MED != nil {
		f.line("med", strconv.FormatUint(uint64(*b.MED), 10))
	}
	f.dur("graceful_shutdown_delay", b.GracefulShutdownDelay)
	f.close()
}

// diffBGP is the bgp block's change and its neighbors'. The router id and
// local AS make the speaker what it is (every session restarts when they
// change: Recreated); the rest (what is announced, with which attributes,
// the shutdown delay) changes in place. A neighbor is its address; any
// other change to it restarts that one session, and only that one.
func diffBGP(oldKeys, newKeys keyIndex, o, n *BGP) (Delta[*BGP], []Delta[*BGPNeighbor]) {
	d := Delta[*BGP]{Key: "bgp", Old: o, New: n}
	var on, nn []*BGPNeighbor
	switch {
	case o == nil && n == nil:
		return d, nil
	case o == nil:
		d.Change, nn = Added, n.Neighbors
	case n == nil:
		d.Change, on = Removed, o.Neighbors
	default:
		// The neighbors are compared one by one, below.
		oc, nc := *o, *n
		oc.Neighbors, nc.Neighbors = nil, nil
		d.Change = settings(&oc, &nc, o.RouterID == n.RouterID && o.LocalAS == n.LocalAS)
		on, nn = o.Neighbors, n.Neighbors
	}
	return d, diffList(oldKeys, newKeys, on, nn, kernelObject[*BGPNeighbor])
}
