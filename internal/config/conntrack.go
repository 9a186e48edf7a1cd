package config

import (
	"net/netip"
	"slices"
	"strconv"
)

// ConntrackSync is the Tandem block conntrack_sync (keepalived has no such
// block; `tandem check` notes it): connection tracking state replicated to
// the peer director by conntrackd (conntrackd(8), conntrackd.conf(5); mode
// FTFW), which Tandem runs and switches on the VRRP transitions of one
// instance or sync group, as netfilter's primary-backup.sh does from
// keepalived's notify scripts. It keeps NAT flows through a director that
// fails over: the new master holds the old one's conntrack entries, NAT
// mappings included.
type ConntrackSync struct {
	Pos Pos `json:"-"`
	// Instance or SyncGroup (one of the two) is whose transitions switch
	// conntrackd: MASTER commits the replicated entries to the kernel,
	// BACKUP and FAULT shorten the kernel's timers of the local ones.
	Instance  string `json:"instance,omitempty"`
	SyncGroup string `json:"sync_group,omitempty"`
	// Interface is the link the sync messages use (ideally a dedicated
	// one between the directors).
	Interface string `json:"interface"`
	// Source is this director's address on Interface; the messages go
	// to Peer (unicast UDP) or to the multicast Group, one of the two, of
	// Source's family.
	Source netip.Addr `json:"source"`
	Peer   netip.Addr `json:"peer,omitzero"`
	Group  netip.Addr `json:"group,omitzero"`
	// Port is the UDP port (unicast) or the multicast group's port:
	// conntrackd's examples use 3780.
	Port int `json:"port"`
}

// DefaultConntrackPort is conntrack_sync's port unless "port" says
// otherwise (the one conntrackd's example configurations use).
const DefaultConntrackPort = 3780

func (p *parser) conntrackSync(n *node, cfg *Config) {
	if !p.args(n, 0, 0) {
		return
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	if prev := cfg.ConntrackSync; prev != nil {
		p.errorf(n.Keyword.Pos, "conntrack_sync: already given at %s (one conntrackd per director)", prev.Pos)
		return
	}
	c := &ConntrackSync{Pos: n.Keyword.Pos}
	p.block("conntrack_sync", kids, map[string]handler{
		"instance":   p.setStr(&c.Instance),
		"sync_group": p.setStr(&c.SyncGroup),
		"interface":  p.setStr(&c.Interface),
		"source":     p.setHostAddr(&c.Source),
		"peer":       p.setHostAddr(&c.Peer),
		"group":      p.setHostAddr(&c.Group),
		"port":       p.setInt(&c.Port, 1, 65535),
	})
	if p.validConntrackSync(c) {
		cfg.ConntrackSync = c
	}
}

// validConntrackSync checks what the block's lines together must say.
func (p *parser) validConntrackSync(c *ConntrackSync) bool {
	bad := func(format string, a ...any) bool {
		p.errorf(c.Pos, "conntrack_sync: "+format, a...)
		return false
	}
	switch {
	case (c.Instance == "") == (c.SyncGroup == ""):
		return bad("give one of instance or sync_group: whose transitions switch conntrackd")
	case c.Interface == "":
		return bad("interface is missing: the link the sync messages use")
	case len(c.Interface) > ifNameMax:
		return bad("interface name %q is longer than %d bytes", c.Interface, ifNameMax)
	case !c.Source.IsValid():
		return bad("source is missing: this director's address on %s", c.Interface)
	case c.Peer.IsValid() == c.Group.IsValid():
		return bad("give one of peer (unicast UDP) or group (multicast)")
	}
	dst, what := c.Peer, "peer"
	if c.Group.IsValid() {
		dst, what = c.Group, "group"
	}
	switch {
	case dst.Is4() != c.Source.Is4():
		return bad("%s %s and source %s are of different families", what, dst, c.Source)
	case c.Group.IsValid() && !c.Group.IsMulticast():
		return bad("group %s is not a multicast address", c.Group)
	case c.Peer.IsValid() && (c.Peer.IsMulticast() || c.Peer == c.Source):
		return bad("peer %s must be the other director's unicast address", c.Peer)
	}
	if c.Port == 0 {
		c.Port = DefaultConntrackPort
	}
	return true
}

// finalizeConntrackSync resolves the instance or sync group, which must
// exist.
func (p *parser) finalizeConntrackSync(cfg *Config) {
	c := cfg.ConntrackSync
	if c == nil {
		return
	}
	switch {
	case c.Instance != "" && !slices.ContainsFunc(cfg.Instances, func(in *Instance) bool { return in.Name == c.Instance }):
		p.errorf(c.Pos, "conntrack_sync: vrrp_instance %q is not defined", c.Instance)
	case c.SyncGroup != "" && !slices.ContainsFunc(cfg.SyncGroups, func(g *SyncGroup) bool { return g.Name == c.SyncGroup }):
		p.errorf(c.Pos, "conntrack_sync: vrrp_sync_group %q is not defined", c.SyncGroup)
	}
}

func (f *formatter) conntrackSync(c *ConntrackSync) {
	if c == nil {
		return
	}
	f.open("conntrack_sync")
	f.str("instance", c.Instance)
	f.str("sync_group", c.SyncGroup)
	f.str("interface", c.Interface)
	f.addr("source", c.Source)
	f.addr("peer", c.Peer)
	f.addr("group", c.Group)
	f.line("port", strconv.Itoa(c.Port))
	f.close()
}

// diffConntrackSync is conntrack_sync's change: conntrackd reads its
// configuration once, so any change restarts it (Recreated).
func diffConntrackSync(o, n *ConntrackSync) Delta[*ConntrackSync] {
	d := Delta[*ConntrackSync]{Key: "conntrack_sync", Old: o, New: n}
	switch {
	case o == nil && n == nil:
	case o == nil:
		d.Change = Added
	case n == nil:
		d.Change = Removed
	default:
		d.Change = kernelObject(o, n)
	}
	return d
}
