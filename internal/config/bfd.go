package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// BFD limits and defaults (keepalived 2.2.7 bfd.h; keepalived.conf(5),
// BFD section).
const (
	bfdNameMax         = 31 // BFD_INAME_MAX - 1
	bfdMinRxDefault    = Duration(10 * time.Millisecond)
	bfdMinTxDefault    = Duration(10 * time.Millisecond)
	bfdIdleTxDefault   = Duration(time.Second)
	bfdMultDefault     = 5
	bfdTTLDefault      = 255 // BFD_CONTROL_TTL (IPv4)
	bfdHopLimitDefault = 64  // BFD_CONTROL_HOPLIMIT (IPv6)
	// bfdSensible is BFD_M*_MAX_SENSIBLE: larger intervals load, with a
	// warning.
	bfdSensible = 10 * time.Second
	// bfdMaxInterval is UINT32_MAX/1000 ms, the largest interval keepalived reads.
	bfdMaxInterval = (1<<32 - 1) / 1000 * time.Millisecond
)

// bfdInstance reads a bfd_instance block (bfd_parser.c). keepalived
// reports every value it cannot use as a configuration error (keepalived
// -t refuses the file); so does Tandem.
func (p *parser) bfdInstance(n *node, cfg *Config) {
	b := &BFDInstance{Pos: n.Keyword.Pos, MinRx: bfdMinRxDefault, MinTx: bfdMinTxDefault, IdleTx: bfdIdleTxDefault, Multiplier: bfdMultDefault}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	b.Name = name
	if len(name) > bfdNameMax {
		p.errorf(n.Args[0].Pos, "bfd_instance %s: name longer than %d characters (keepalived refuses it)", name, bfdNameMax)
	}
	neighbor := "neighbor_ip"
	hs := map[string]handler{
		"neighbor_ip":  p.setHostAddr(&b.Neighbor),
		"neighbour_ip": func(n *node) { neighbor = n.Keyword.Text; p.setHostAddr(&b.Neighbor)(n) },
		"source_ip":    p.setHostAddr(&b.Source),
		"min_rx":       p.setMs(&b.MinRx, time.Millisecond),
		"min_tx":       p.setMs(&b.MinTx, time.Millisecond),
		"idle_tx":      p.setMs(&b.IdleTx, time.Second),
		"multiplier":   p.setInt(&b.Multiplier, 1, 255),
		"passive":      p.setConst(&b.Passive, true),
		"ttl":          p.bfdTTL(b),
		"hoplimit":     p.bfdTTL(b),
		"max_hops":     p.signedInt(&b.MaxHops, -1, 255),
		"weight":       p.weightTo(&b.Weight, &b.WeightReverse, nil),
		"multihop": func(n *node) {
			p.setConst(&b.Multihop, true)(n)
			p.warnf(n.Keyword.Pos, "bfd_instance %s: multihop is a Tandem extension (RFC 5883, UDP port 4784); keepalived does not know it and refuses the file", b.Name)
		},
	}
	p.block("bfd_instance", kids, hs)
	where := "bfd_instance " + b.Name
	switch {
	case !b.Neighbor.IsValid():
		p.errorf(n.Keyword.Pos, "%s: no %s given", where, neighbor)
		return
	case b.Source.IsValid() && b.Source.Is4() != b.Neighbor.Is4():
		p.errorf(n.Keyword.Pos, "%s: source_ip %s and %s %s are not of the same family", where, b.Source, neighbor, b.Neighbor)
		return
	}
	if !b.ttlSet {
		b.TTL = bfdTTLDefault
		if b.Neighbor.Is6() {
			b.TTL = bfdHopLimitDefault
		}
	}
	if b.MaxHops > b.TTL {
		// keepalived clamps it, but reports a configuration error.
		p.errorf(n.Keyword.Pos, "%s: max_hops %d exceeds ttl/hoplimit %d", where, b.MaxHops, b.TTL)
		b.MaxHops = b.TTL
	}
	// bfd_data.c find_bfd_by_addr: one session per neighbor, unless both
	// name distinct source addresses.
	for _, o := range cfg.BFDInstances {
		if o.Neighbor == b.Neighbor && (!o.Source.IsValid() || !b.Source.IsValid() || o.Source == b.Source) && o.Name != b.Name {
			p.errorf(n.Keyword.Pos, "%s: %s %s is already bfd_instance %s's (at %s); give each a distinct source_ip", where, neighbor, b.Neighbor, o.Name, o.Pos)
			return
		}
	}
	cfg.BFDInstances = append(cfg.BFDInstances, b)
}

// bfdTTL reads ttl or hoplimit, 1..255.
func (p *parser) bfdTTL(b *BFDInstance) handler {
	return func(n *node) {
		if v, ok := p.intArg(n, 1, 255); ok {
			b.TTL, b.ttlSet = v, true
		}
	}
}

// signedInt reads one integer argument in [lo, hi], which may be negative.
func (p *parser) signedInt(dst *int, lo, hi int) handler {
	return func(n *node) {
		if p.noBlock(n) && p.args(n, 1, 1) {
			if v, ok := p.intTok(n, n.Args[0], lo, hi); ok {
				*dst = v
			}
		}
	}
}

// setMs reads an interval in milliseconds with at most three decimals
// (keepalived's read_decimal_unsigned_strvec with 3 places), at least lo
// and at most UINT32_MAX/1000 ms; above 10 s it warns, as keepalived logs
// that the value is larger than sensible.
func (p *parser) setMs(dst *Duration, lo time.Duration) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		t := n.Args[0]
		_, frac, _ := strings.Cut(t.Text, ".")
		d, err := parseSeconds(t.Text) // the number, read as seconds ...
		d /= 1000                      // ... is that many milliseconds
		if err != nil || len(frac) > 3 || d < lo || d > bfdMaxInterval {
			p.errorf(t.Pos, "%s: %q is not a number of milliseconds in %s..%s (at most 3 decimals)", n.Keyword.Text, t.Text, msText(Duration(lo)), msText(Duration(bfdMaxInterval)))
			return
		}
		if d > bfdSensible {
			p.warnf(t.Pos, "%s: %s ms is larger than the sensible maximum of %s ms", n.Keyword.Text, t.Text, msText(Duration(bfdSensible)))
		}
		*dst = Duration(d)
	}
}

// msText writes d as keepalived reads BFD times: decimal milliseconds.
func msText(d Duration) string { return (d * 1000).Seconds() }

// trackBFDHandler reads a track_bfd block: lines "NAME [weight N
// [reverse|noreverse]]", N in -253..253 (vrrp_track.c alloc_track_bfd).
func (p *parser) trackBFDHandler(dst *[]TrackRef) handler {
	return func(n *node) {
		listBlock(p, dst, func(k *node) (TrackRef, bool) { return p.trackRef(n, k, 253, true) })(n)
	}
}

// fastFailoverBFD reads Tandem's fast_failover_bfd NAME.
func (p *parser) fastFailoverBFD(in *Instance) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		in.FastFailoverBFD = &TrackRef{Pos: n.Args[0].Pos, Name: n.Args[0].Text}
		p.warnf(n.Keyword.Pos, "vrrp_instance %s: fast_failover_bfd is a Tandem extension; keepalived does not know it and refuses the file", in.Name)
	}
}

// bfdCheck reads BFD_CHECK's own keywords: name and alpha (check_bfd.c;
// none of the other checkers' timing or connection keywords).
func (p *parser) bfdCheck(c *Checker) map[string]handler {
	c.BFD = &BFDCheck{}
	return map[string]handler{
		"name": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			if c.BFD.Name != "" {
				p.errorf(n.Args[0].Pos, "BFD_CHECK: name %s already given (%s)", n.Args[0].Text, c.BFD.Name)
				return
			}
			c.BFD.Name = n.Args[0].Text
		},
		"alpha": p.setFlagPtr(&c.Set.Alpha),
	}
}

// resolveTrackBFD gives track_bfd references without a weight of their
// own the bfd_instance's weight and reverse.
func resolveTrackBFD(cfg *Config, refs []TrackRef) {
	for i := range refs {
		if b := cfg.BFD(refs[i].Name); b != nil && !refs[i].WeightSet {
			refs[i].Weight, refs[i].Reverse = b.Weight, b.WeightReverse
		}
	}
}

// BFD returns the bfd_instance called name, or nil.
func (c *Config) BFD(name string) *BFDInstance {
	i := slices.IndexFunc(c.BFDInstances, func(b *BFDInstance) bool { return b.Name == name })
	if i < 0 {
		return nil
	}
	return c.BFDInstances[i]
}

// validateBFDRefs checks that owner's track_bfd names bfd_instances, once
// each (vrrp_track.c alloc_track_bfd).
func (p *parser) validateBFDRefs(cfg *Config, owner string, refs []TrackRef) {
	seen := map[string]bool{}
	for _, r := range refs {
		switch {
		case cfg.BFD(r.Name) == nil:
			p.errorf(r.Pos, "%s: track_bfd: bfd_instance %q is not defined", owner, r.Name)
		case seen[r.Name]:
			p.errorf(r.Pos, "%s: track_bfd: %s is tracked twice", owner, r.Name)
		}
		seen[r.Name] = true
	}
}

// validateBFD checks the references to bfd_instances that are not
// track_bfd's: fast_failover_bfd and BFD_CHECK.
func (p *parser) validateBFD(cfg *Config) {
	for _, in := range cfg.Instances {
		r := in.FastFailoverBFD
		if r == nil {
			continue
		}
		b := cfg.BFD(r.Name)
		switch {
		case b == nil:
			p.errorf(r.Pos, "vrrp_instance %s: fast_failover_bfd: bfd_instance %q is not defined", in.Name, r.Name)
		case len(in.UnicastPeers) > 0 && !slices.ContainsFunc(in.UnicastPeers, func(u UnicastPeer) bool { return u.Addr == b.Neighbor }):
			// The takeover needs the master's adverts to come from the
			// session's neighbor; with unicast they come from a peer.
			p.warnf(r.Pos, "vrrp_instance %s: fast_failover_bfd: bfd_instance %s's neighbor %s is none of the instance's unicast peers, so it is never the master this backup hears: the session going down will change nothing", in.Name, r.Name, b.Neighbor)
		}
	}
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			seen := map[string]bool{}
			for _, c := range rs.Checkers {
				if c.BFD == nil {
					continue
				}
				where := fmt.Sprintf("virtual_server %s real_server %s: BFD_CHECK", vs.Name(), netip.AddrPortFrom(rs.IP, uint16(rs.Port)))
				switch {
				case c.BFD.Name == "":
					p.errorf(c.Pos, "%s: no name given", where)
				case cfg.BFD(c.BFD.Name) == nil:
					p.errorf(c.Pos, "%s: bfd_instance %q is not defined", where, c.BFD.Name)
				case seen[c.BFD.Name]:
					p.errorf(c.Pos, "%s: the real server already checks %s", where, c.BFD.Name)
				}
				seen[c.BFD.Name] = true
			}
		}
	}
}
