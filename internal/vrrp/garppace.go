package vrrp

import (
	"net/netip"
	"time"

	"tandem/internal/config"
)

// garpPacer spaces out the gratuitous ARPs and unsolicited NAs sent on an
// interface, whichever instance sends them (keepalived.conf(5) garp_group,
// vrrp_garp_interval, vrrp_gna_interval; vrrp_arp.c send_gratuitous_arp
// queues one that comes before the interface's next allowed time). The
// interfaces of one garp_group share one schedule, for their switch's
// sake; any other interface has its own, with the global intervals. The
// loop owns it.
type garpPacer struct {
	groups map[string]*garpPace // interface -> its group's schedule
	own    map[string]*garpPace // interfaces in no group
	def    garpPace             // the global intervals, for own's entries
}

// garpPace is one schedule: per family, the spacing and the earliest time
// the next announcement may go.
type garpPace struct {
	interval4, interval6 time.Duration
	next4, next6         time.Time
}

func newGarpPacer(cfg *config.Config) *garpPacer {
	p := &garpPacer{groups: map[string]*garpPace{}, own: map[string]*garpPace{},
		def: garpPace{interval4: time.Duration(cfg.Global.VRRPGarpInterval), interval6: time.Duration(cfg.Global.VRRPGnaInterval)}}
	for _, g := range cfg.GarpGroups {
		pace := &garpPace{interval4: time.Duration(g.GarpInterval), interval6: time.Duration(g.GnaInterval)}
		for _, i := range g.Interfaces {
			p.groups[i] = pace
		}
	}
	return p
}

// slot returns when an announcement of addr on iface may be sent, at now
// or later, and books it.
func (p *garpPacer) slot(iface string, addr netip.Addr, now time.Time) time.Time {
	pace := p.groups[iface]
	if pace == nil {
		if pace = p.own[iface]; pace == nil {
			def := p.def
			pace = &def
			p.own[iface] = pace
		}
	}
	interval, next := pace.interval6, &pace.next6
	if addr.Is4() {
		interval, next = pace.interval4, &pace.next4
	}
	if interval <= 0 {
		return now
	}
	at := now
	if next.After(at) {
		at = *next
	}
	*next = at.Add(interval)
	return at
}
