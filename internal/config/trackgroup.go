package config

import (
	"slices"

	"tandem/internal/config/syntax"
)

// TrackGroup is a track_group block (keepalived.conf(5) "Static track
// groups"): the VRRP instances that track the static addresses, routes
// and rules naming the group with `track_group NAME`. Each member
// instance tracks the interface of each such entry (an address's dev, a
// route's dev, a rule's iif) as track_interface does with weight 0: the
// interface going down puts the instance in FAULT (keepalived
// vrrp_static_track.c static_track_group_init).
type TrackGroup struct {
	Pos  Pos    `json:"-"`
	Name string `json:"name"`
	// Members are the group { } instances that exist; the parser warns
	// about and drops the others, as keepalived ignores them.
	Members []string `json:"group"`
}

// trackGroup reads `track_group NAME { group { INSTANCE ... } }`. Names
// are recorded as they are read: an entry can only name a group defined
// above it, as in keepalived, which looks the group up while it parses
// the entry (vrrp_ipaddress.c, vrrp_iproute.c, vrrp_iprule.c).
func (p *parser) trackGroup(n *node, cfg *Config) {
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	if i := slices.IndexFunc(cfg.TrackGroups, func(g *TrackGroup) bool { return g.Name == name }); i >= 0 {
		p.errorf(n.Keyword.Pos, "track_group %s is defined twice (first at %s)", name, cfg.TrackGroups[i].Pos)
		return
	}
	g := &TrackGroup{Pos: n.Keyword.Pos, Name: name}
	seen := false
	p.block("track_group", kids, map[string]handler{
		"group": func(n *node) {
			if seen {
				p.errorf(n.Keyword.Pos, "track_group %s: group given twice", name)
				return
			}
			seen = true
			g.Members = p.words(n)
		},
	})
	if len(g.Members) == 0 {
		p.warnf(n.Keyword.Pos, "track_group %s: no group { } of instances; it tracks nothing", name)
	}
	cfg.TrackGroups = append(cfg.TrackGroups, g)
	if p.trackGroups == nil {
		p.trackGroups = map[string]bool{}
	}
	p.trackGroups[name] = true
}

// staticTrackGroup reads the value of a static entry's track_group
// option at args[i]: a group defined above (keepalived reports "track_group
// NAME not found" otherwise), given once, on a static entry only.
func (p *parser) staticTrackGroup(what string, static bool, dst *string, args []syntax.Token, i int) bool {
	if !static {
		p.errorf(args[i].Pos, "%s: track_group is only for static_routes and static_rules entries", what)
		return false
	}
	if i+1 >= len(args) {
		p.errorf(args[i].Pos, "%s: track_group needs a value", what)
		return false
	}
	v := args[i+1]
	switch {
	case *dst != "":
		p.errorf(args[i].Pos, "%s: track_group given twice", what)
		return false
	case !p.trackGroups[v.Text]:
		p.errorf(v.Pos, "%s: track_group %s not found (a track_group block must come before the entries that name it)", what, v.Text)
		return false
	}
	*dst = v.Text
	return true
}

// validateTrackGroups drops the members that are no instance, as
// keepalived does ("vrrp instance %s specified in track group %s doesn't
// exist - ignoring"), and warns about entries that have both track_group
// and no_track: keepalived does not track them.
func (p *parser) validateTrackGroups(cfg *Config) {
	for _, g := range cfg.TrackGroups {
		g.Members = slices.DeleteFunc(g.Members, func(m string) bool {
			if slices.ContainsFunc(cfg.Instances, func(in *Instance) bool { return in.Name == m }) {
				return false
			}
			p.warnf(g.Pos, "track_group %s: vrrp_instance %s does not exist; ignored", g.Name, m)
			return true
		})
	}
	both := func(pos Pos, what string) {
		p.warnf(pos, "static %s has both track_group and no_track: not tracked (as in keepalived)", what)
	}
	for _, a := range cfg.StaticAddresses {
		if a.TrackGroup != "" && a.NoTrack {
			both(a.Pos, "address "+a.Prefix.String())
		}
	}
	for _, r := range cfg.StaticRoutes {
		if r.TrackGroup != "" && r.NoTrack {
			both(r.Pos, "route "+r.Dst.String())
		}
	}
	for _, r := range cfg.StaticRules {
		if r.TrackGroup != "" && r.NoTrack {
			both(r.Pos, "rule")
		}
	}
}
