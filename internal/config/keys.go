package config

import (
	"fmt"
	"net/netip"
	"strconv"
)

// Key is the stable identity of one configuration object: two
// configurations' objects with the same key are the same object, changed
// or not, wherever they sit in the file. Keys are computed once, when the
// configuration is finalized (or first asked for, for a Config built in
// code), and Diff compares configurations by them.
type Key string

// keyIndex returns the keys computed at finalize; a Config built in code
// gets them computed afresh (not stored: a Config is shared read-only
// between goroutines).
func (c *Config) keyIndex() keyIndex {
	if c.keys == nil {
		return computeKeys(c)
	}
	return c.keys
}

// keyIndex maps each keyed object (by pointer: *Instance, *SyncGroup,
// *IPAddress, *Route, *Rule, *Script, *TrackFile, *TrackProcess,
// *ServerGroup, *VirtualServer, *RealServer, *Checker, *BFDInstance,
// *BGPNeighbor) to
// its key.
type keyIndex map[any]Key

// add records obj under k, making k unique among the keys recorded: a
// second object with the same identity (two identical checkers of one
// real server, say) is told apart by its rank.
func (ki keyIndex) add(obj any, k Key, seen map[Key]int) Key {
	seen[k]++
	if n := seen[k]; n > 1 {
		k += Key("#" + strconv.Itoa(n))
	}
	ki[obj] = k
	return k
}

func computeKeys(c *Config) keyIndex {
	ki := keyIndex{}
	seen := map[Key]int{}
	for _, in := range c.Instances {
		ik := ki.add(in, Key("vrrp_instance "+in.Name), seen)
		for _, a := range in.VIPs {
			ki.add(a, ik+"/"+addrKey(a, in.Interface), seen)
		}
		for _, a := range in.ExcludedVIPs {
			ki.add(a, ik+"/excluded "+addrKey(a, in.Interface), seen)
		}
		for _, r := range in.Routes {
			ki.add(r, ik+"/"+routeKey(r), seen)
		}
		for _, r := range in.Rules {
			ki.add(r, ik+"/"+ruleKey(r), seen)
		}
	}
	for _, g := range c.SyncGroups {
		ki.add(g, Key("vrrp_sync_group "+g.Name), seen)
	}
	for _, s := range c.Scripts {
		ki.add(s, Key("vrrp_script "+s.Name), seen)
	}
	for _, f := range c.TrackFiles {
		ki.add(f, Key("vrrp_track_file "+f.Name), seen)
	}
	for _, p := range c.TrackProcesses {
		ki.add(p, Key("vrrp_track_process "+p.Name), seen)
	}
	for _, a := range c.StaticAddresses {
		ki.add(a, "static "+addrKey(a, ""), seen)
	}
	for _, r := range c.StaticRoutes {
		ki.add(r, "static "+routeKey(r), seen)
	}
	for _, r := range c.StaticRules {
		ki.add(r, "static "+ruleKey(r), seen)
	}
	for _, g := range c.ServerGroups {
		ki.add(g, Key("virtual_server_group "+g.Name), seen)
	}
	for _, b := range c.BFDInstances {
		ki.add(b, Key("bfd_instance "+b.Name), seen)
	}
	if c.BGP != nil {
		for _, nb := range c.BGP.Neighbors {
			ki.add(nb, Key("bgp neighbor "+nb.Addr.String()), seen)
		}
	}
	for _, vs := range c.VirtualServers {
		vk := ki.add(vs, Key(fmt.Sprintf("virtual_server %s %s %s", vs.Family, vs.Protocol, vs.Name())), seen)
		for _, rs := range vs.RealServers {
			rk := ki.add(rs, vk+"/real_server "+Key(netip.AddrPortFrom(rs.IP, uint16(rs.Port)).String()), seen)
			for _, ck := range rs.Checkers {
				ki.add(ck, rk+"/"+checkerKey(ck), seen)
			}
		}
	}
	return ki
}

// addrKey: the kernel knows an address by its prefix and interface
// (ip-address(8)); defDev is the interface used when the entry names none.
func addrKey(a *IPAddress, defDev string) Key {
	dev := a.Dev
	if dev == "" {
		dev = defDev
	}
	return Key("address " + a.Prefix.String() + " dev " + dev)
}

// routeKey: the kernel knows a route by its table, destination, TOS and
// metric (ip-route(8): "the route is identified by ..."); a different
// gateway or device is a different route to the same key.
func routeKey(r *Route) Key {
	k := fmt.Sprintf("route %v %s table %v metric %s", r.Type, r.Dst, r.Table, optional(r.Metric))
	if r.TOS != 0 {
		k += " tos " + r.TOS.String()
	}
	return Key(k)
}

// ruleKey: a rule has no name; its selectors and preference are what
// `ip rule del` matches on (ip-rule(8)).
func ruleKey(r *Rule) Key {
	return Key(fmt.Sprintf("rule not=%t from %s to %s iif %s oif %s fwmark %#x/%s tos %v pref %s",
		r.Not, r.From, r.To, r.IIF, r.OIF, r.FWMark, optional(r.FWMask), r.TOS, optional(r.Priority)))
}

// optional formats an optional number, "-" when unset.
func optional(p *uint32) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*p), 10)
}

// checkerKey: a checker is what it checks and how (its type and target);
// its timing and other parameters are settings a running checker takes
// on without losing its state.
func checkerKey(c *Checker) Key {
	if c.BFD != nil {
		// A BFD_CHECK is the session it follows.
		return Key("BFD_CHECK " + c.BFD.Name)
	}
	k := c.Type.String() + " " + netip.AddrPortFrom(c.ConnectIP, uint16(c.ConnectPort)).String()
	if c.BindTo.IsValid() || c.BindPort != 0 || c.BindIf != "" {
		k += fmt.Sprintf(" bind %s port %d if %s", c.BindTo, c.BindPort, c.BindIf)
	}
	if c.FWMark != 0 {
		k += fmt.Sprintf(" fwmark %d", c.FWMark)
	}
	return Key(k)
}
