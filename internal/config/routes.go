package config

import (
	"net/netip"
	"strings"

	"tandem/internal/config/syntax"
)

// Routes as keepalived 2.2.7 reads them (vrrp_iproute.c alloc_route and
// parse_nexthops; facts checked with `keepalived -t`):
//
//	[TYPE] [to] PREFIX|default|any|all [src A] [via|gw [inet|inet6] A]
//	[or A (deprecated: via and A become two nexthops)] [dev|oif IF] [scope S] [table T] [metric|priority|preference N]
//	[protocol P] [tos|dsfield D] [onlink] [no_track]
//	[nexthop [via [inet|inet6] A] [dev IF] [weight N] [onlink]]...
//
// Every address of a route is of one family ("Cannot mix IPv4 and IPv6
// addresses for route"): keepalived refuses an IPv6 gateway for an IPv4
// destination, though the kernel could take it as RTA_VIA. default, any
// and all are the default route of the family the other addresses give,
// IPv4 if none. nexthop groups end the line.

// routeFamily collects the family of each address of a route, in order.
type routeFamily struct {
	toks []syntax.Token
	v6   []bool
}

func (f *routeFamily) add(t syntax.Token, v6 bool) {
	f.toks, f.v6 = append(f.toks, t), append(f.v6, v6)
}

// check reports the first address of another family than the first.
func (f *routeFamily) check(p *parser) (v6, ok bool) {
	for i := range f.v6 {
		if f.v6[i] != f.v6[0] {
			p.errorf(f.toks[i].Pos, "route: cannot mix IPv4 and IPv6 addresses (%s); keepalived refuses it too", f.toks[i].Text)
			return false, false
		}
	}
	return len(f.v6) > 0 && f.v6[0], true
}

// routeNotSupported are route options keepalived reads that Tandem does
// not apply: refused by name rather than dropped.
var routeNotSupported = map[string]string{
	"from":               "source-prefix routing (RTA_SRC) is not supported by Tandem's netlink library",
	"mtu":                "route metrics are not supported by Tandem",
	"advmss":             "route metrics are not supported by Tandem",
	"hoplimit":           "route metrics are not supported by Tandem",
	"rtt":                "route metrics are not supported by Tandem",
	"rttvar":             "route metrics are not supported by Tandem",
	"reordering":         "route metrics are not supported by Tandem",
	"window":             "route metrics are not supported by Tandem",
	"cwnd":               "route metrics are not supported by Tandem",
	"ssthresh":           "route metrics are not supported by Tandem",
	"realms":             "route realms are not supported by Tandem",
	"rto_min":            "route metrics are not supported by Tandem",
	"initcwnd":           "route metrics are not supported by Tandem",
	"initrwnd":           "route metrics are not supported by Tandem",
	"features":           "route metrics are not supported by Tandem",
	"quickack":           "route metrics are not supported by Tandem",
	"congctl":            "route metrics are not supported by Tandem",
	"fastopen_no_cookie": "route metrics are not supported by Tandem",
	"pref":               "IPv6 router preference is not supported by Tandem",
	"expires":            "route expiry is not supported by Tandem",
	"ttl-propagate":      "MPLS is not supported by Tandem",
	"encap":              "lightweight tunnel encapsulation is not supported by Tandem",
	"as":                 "MPLS is not supported by Tandem",
	"vrf":                "VRFs are not supported by Tandem",
	"add":                "route add modes are not supported by Tandem (routes are replaced)",
	"prepend":            "route add modes are not supported by Tandem (routes are replaced)",
	"append":             "route add modes are not supported by Tandem (routes are replaced)",
	"nat":                "the Linux kernel no longer takes NAT routes",
	"xresolve":           "the Linux kernel does not take external-resolver routes",
}

// route reads one route line.
func (p *parser) route(k *node, static bool) (*Route, bool) {
	r := &Route{Pos: k.Keyword.Pos}
	if k.HasBlock {
		p.errorf(k.Keyword.Pos, "route: unexpected block")
		return nil, false
	}
	toks := append([]syntax.Token{k.Keyword}, k.Args...)
	var fam routeFamily
	var dst syntax.Token
	haveDst := false
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func() (syntax.Token, bool) {
			if i+1 >= len(toks) {
				p.errorf(t.Pos, "route: %s needs a value", t.Text)
				return syntax.Token{}, false
			}
			i++
			return toks[i], true
		}
		nextAddr := func() (netip.Addr, syntax.Token, bool) {
			v, ok := next()
			if !ok {
				return netip.Addr{}, v, false
			}
			a, ok := p.addrTok(k, v)
			return a, v, ok
		}
		if why, ok := routeNotSupported[t.Text]; ok {
			p.errorf(t.Pos, "route: %s: %s", t.Text, why)
			return nil, false
		}
		switch t.Text {
		case "inet", "inet6":
			// keepalived 2.2.7 takes the family word and then skips the
			// word after it ("Route must have a destination").
			p.errorf(t.Pos, "route: %s before the destination is refused by keepalived 2.2.7 (it skips the next word); write the family after via (via %s ADDR)", t.Text, t.Text)
			return nil, false
		case "unicast":
			r.Type = 0
		case "blackhole", "unreachable", "prohibit", "throw", "local", "broadcast", "anycast", "multicast":
			r.Type = RouteType(routeTypeNames[t.Text])
		case "src":
			a, v, ok := nextAddr()
			if !ok {
				return nil, false
			}
			r.Src = a
			fam.add(v, a.Is6())
		case "via", "gw":
			if t.Text == "gw" {
				p.warnf(t.Pos, `route: "gw" is deprecated; read as "via" (keepalived 2.2.7 reports it as a configuration error)`)
			}
			a, v, ok := p.gateway(k, toks, &i)
			if !ok {
				return nil, false
			}
			r.Via = a
			fam.add(v, a.Is6())
		case "or":
			p.warnf(t.Pos, `route: "or" is deprecated; use nexthop groups (keepalived 2.2.7 reports it as a configuration error)`)
			if len(r.Nexthops) > 0 || !r.Via.IsValid() {
				p.errorf(t.Pos, `route: "or" takes one alternative to a via gateway given before it (keepalived ignores any further "or")`)
				return nil, false
			}
			a, v, ok := nextAddr()
			if !ok {
				return nil, false
			}
			// keepalived moves the via gateway and the alternative into
			// two nexthops of a multipath route.
			r.Nexthops = []Nexthop{{Via: r.Via}, {Via: a}}
			r.Via = netip.Addr{}
			fam.add(v, a.Is6())
		case "tos", "dsfield":
			v, ok := next()
			if !ok {
				return nil, false
			}
			d, ok := p.rtTok("route", kindDSField, v)
			if !ok {
				return nil, false
			}
			r.TOS = DSField(d)
		case "dev", "oif", "scope", "table", "proto", "protocol", "metric", "preference", "priority":
			v, ok := next()
			if !ok || !p.routeValue(k, r, t, v) {
				return nil, false
			}
		case "onlink":
			r.OnLink = true
		case "no_track":
			r.NoTrack = true
		case "track_group":
			if !p.staticTrackGroup("route", static, &r.TrackGroup, toks, i) {
				return nil, false
			}
			i++
		case "to":
		case "nexthop":
			if r.Via.IsValid() || len(r.Nexthops) > 0 {
				p.errorf(t.Pos, "route: nexthop groups cannot follow a via or an or gateway")
				return nil, false
			}
			if !p.nexthops(k, r, toks[i:], &fam) {
				return nil, false
			}
			i = len(toks)
		default:
			if haveDst {
				p.errorf(t.Pos, "route: unknown option %q", t.Text)
				return nil, false
			}
			dst, haveDst = t, true
			switch t.Text {
			case "default", "any", "all":
			case "default6":
				fam.add(t, true)
			default:
				a, _, _ := strings.Cut(t.Text, "/")
				if ip, err := netip.ParseAddr(a); err == nil {
					fam.add(t, ip.Is6())
				}
			}
		}
	}
	if !haveDst {
		p.errorf(k.Keyword.Pos, "route: no destination prefix")
		return nil, false
	}
	v6, ok := fam.check(p)
	if !ok {
		return nil, false
	}
	switch dst.Text {
	case "default", "any", "all", "default6":
		r.Dst = netip.MustParsePrefix("0.0.0.0/0")
		if v6 {
			r.Dst = netip.MustParsePrefix("::/0")
		}
	default:
		pfx, ok := p.parsePrefix(k, dst)
		if !ok {
			return nil, false
		}
		r.Dst = pfx
	}
	return r, true
}

// gateway reads "via [inet|inet6] ADDR" after toks[*i]; the family word,
// when given, must be the address's.
func (p *parser) gateway(k *node, toks []syntax.Token, i *int) (netip.Addr, syntax.Token, bool) {
	kw := toks[*i]
	take := func() (syntax.Token, bool) {
		if *i+1 >= len(toks) {
			p.errorf(kw.Pos, "route: %s needs an address", kw.Text)
			return syntax.Token{}, false
		}
		*i++
		return toks[*i], true
	}
	v, ok := take()
	if !ok {
		return netip.Addr{}, v, false
	}
	family := ""
	if v.Text == "inet" || v.Text == "inet6" {
		family = v.Text
		if v, ok = take(); !ok {
			return netip.Addr{}, v, false
		}
	}
	a, ok := p.addrTok(k, v)
	if !ok {
		return a, v, false
	}
	if family != "" && (family == "inet6") != a.Is6() {
		p.errorf(v.Pos, "route: %s %s %s: the address is not of family %s", kw.Text, family, v.Text, family)
		return a, v, false
	}
	return a, v, true
}

// routeValue reads the value v of a route option t that takes one.
func (p *parser) routeValue(k *node, r *Route, t, v syntax.Token) bool {
	switch t.Text {
	case "dev", "oif":
		r.Dev = v.Text
	case "scope":
		s, ok := p.rtTok("route", kindScope, v)
		if !ok {
			return false
		}
		r.Scope = Scope(s)
	case "table":
		n, ok := p.rtTok("route", kindTable, v)
		if !ok {
			return false
		}
		r.Table = RouteTable(n)
	case "proto", "protocol":
		n, ok := p.rtTok("route", kindProto, v)
		if !ok {
			return false
		}
		r.Proto = RouteProto(n)
	default:
		m, ok := p.uintTok(k, v, 0, 1<<32-1)
		if !ok {
			return false
		}
		u := uint32(m)
		r.Metric = &u
	}
	return true
}

// nexthops reads the nexthop groups that end a route line, toks starting
// at the first "nexthop".
func (p *parser) nexthops(k *node, r *Route, toks []syntax.Token, fam *routeFamily) bool {
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.Text == "nexthop" {
			r.Nexthops = append(r.Nexthops, Nexthop{})
			continue
		}
		nh := &r.Nexthops[len(r.Nexthops)-1]
		if t.Text == "onlink" {
			nh.OnLink = true
			continue
		}
		if t.Text != "via" && t.Text != "dev" && t.Text != "weight" {
			p.errorf(t.Pos, "route: %q after nexthop groups (a nexthop takes via, dev, weight and onlink; the route's own options come before the first nexthop)", t.Text)
			return false
		}
		if t.Text == "via" {
			a, v, ok := p.gateway(k, toks, &i)
			if !ok {
				return false
			}
			nh.Via = a
			fam.add(v, a.Is6())
			continue
		}
		if i+1 >= len(toks) {
			p.errorf(t.Pos, "route: nexthop %s needs a value", t.Text)
			return false
		}
		i++
		v := toks[i]
		if t.Text == "dev" {
			nh.Dev = v.Text
			continue
		}
		// keepalived: weight 1..256, sent as weight-1 (rtnh_hops).
		w, ok := p.uintTok(&node{Keyword: t}, v, 1, 256)
		if !ok {
			return false
		}
		nh.Weight = w
	}
	return true
}
