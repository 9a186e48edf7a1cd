package config

import (
	"math"
	"time"
)

// GarpGroup is a garp_group block (keepalived.conf(5) "VRRP gratuitous ARP
// and unsolicited neighbour advert delay group(s)"): gratuitous ARPs sent
// on its interfaces, all of them together, are at least GarpInterval
// apart, and unsolicited NAs GnaInterval apart (0: no spacing), whichever
// instances send them. Interfaces in no group get the global
// vrrp_garp_interval and vrrp_gna_interval each for itself.
type GarpGroup struct {
	Pos          Pos      `json:"-"`
	GarpInterval Duration `json:"garp_interval"`
	GnaInterval  Duration `json:"gna_interval"`
	// Interfaces are the interface (one) or interfaces (a block) the
	// intervals apply to, aggregated.
	Interfaces []string `json:"interfaces"`
}

// maxGroupGarpInterval bounds garp_group's intervals: keepalived reads them
// as microseconds from 0 to INT_MAX (vrrp_parser.c,
// garp_group_garp_interval_handler), unlike vrrp_garp_interval's 1 µs ..
// UINT_MAX µs.
const maxGroupGarpInterval = math.MaxInt32 * time.Microsecond

func (p *parser) garpGroup(n *node, cfg *Config) {
	if !p.args(n, 0, 0) {
		return
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	g := &GarpGroup{Pos: n.Keyword.Pos}
	p.block("garp_group", kids, map[string]handler{
		"garp_interval": p.setDur(&g.GarpInterval, 0, maxGroupGarpInterval),
		"gna_interval":  p.setDur(&g.GnaInterval, 0, maxGroupGarpInterval),
		"interface": func(n *node) {
			if p.noBlock(n) && p.args(n, 1, 1) {
				g.Interfaces = append(g.Interfaces, n.Args[0].Text)
			}
		},
		"interfaces": func(n *node) { g.Interfaces = append(g.Interfaces, p.words(n)...) },
	})
	if len(g.Interfaces) == 0 {
		p.warnf(n.Keyword.Pos, "garp_group: no interface or interfaces; it applies to nothing")
		return
	}
	// keepalived: "garp_group already specified for IFACE - ignoring".
	for _, other := range cfg.GarpGroups {
		for _, a := range other.Interfaces {
			for _, b := range g.Interfaces {
				if a == b {
					p.errorf(n.Keyword.Pos, "garp_group: interface %s is already in the garp_group at %s", a, other.Pos)
					return
				}
			}
		}
	}
	cfg.GarpGroups = append(cfg.GarpGroups, g)
}

func (f *formatter) garpGroups(gs []*GarpGroup) {
	for _, g := range gs {
		f.open("garp_group")
		f.dur("garp_interval", g.GarpInterval)
		f.dur("gna_interval", g.GnaInterval)
		f.open("interfaces")
		for _, i := range g.Interfaces {
			f.line(i)
		}
		f.close()
		f.close()
	}
}
