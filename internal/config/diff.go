package config

import (
	"reflect"
	"slices"
)

// Change is what a reload does to one object.
type Change uint8

// The changes, from the object's point of view.
const (
	// Unchanged: nothing to do.
	Unchanged Change = iota
	// Added and Removed: the object is new, or gone.
	Added
	Removed
	// InPlace: same identity, settings changed; a running object takes
	// them on without being re-created (no state transition).
	InPlace
	// Recreated: same key, but something that makes the object what it
	// is changed (see the identity functions below): the old one goes
	// and a new one comes.
	Recreated
)

func (c Change) String() string {
	return [...]string{"unchanged", "added", "removed", "in place", "recreated"}[c]
}

// Delta is one object's change between two configurations.
type Delta[T any] struct {
	Key    Key
	Change Change
	// Old is the object in the old configuration (zero if Added), New in
	// the new one (zero if Removed).
	Old, New T
}

// Gone reports whether the old object must be taken away (removed or
// re-created).
func (d Delta[T]) Gone() bool { return d.Change == Removed || d.Change == Recreated }

// Arrived reports whether the new object must be put in place (added or
// re-created).
func (d Delta[T]) Arrived() bool { return d.Change == Added || d.Change == Recreated }

// InstanceDelta is an instance's change with those of the addresses,
// routes and rules it installs (keyed within the instance).
type InstanceDelta struct {
	Delta[*Instance]
	VIPs, ExcludedVIPs []Delta[*IPAddress]
	Routes             []Delta[*Route]
	Rules              []Delta[*Rule]
}

// VirtualServerDelta is a virtual server's change with its real servers'.
type VirtualServerDelta struct {
	Delta[*VirtualServer]
	RealServers []RealServerDelta
}

// RealServerDelta is a real server's change with its checkers'.
type RealServerDelta struct {
	Delta[*RealServer]
	Checkers []Delta[*Checker]
}

// ConfigDiff is what changed between two configurations, object by object.
// Each list holds the new configuration's objects in its order, then the
// removed ones in the old configuration's order.
type ConfigDiff struct {
	Instances       []InstanceDelta
	SyncGroups      []Delta[*SyncGroup]
	Scripts         []Delta[*Script]
	TrackFiles      []Delta[*TrackFile]
	TrackProcesses  []Delta[*TrackProcess]
	StaticAddresses []Delta[*IPAddress]
	StaticRoutes    []Delta[*Route]
	StaticRules     []Delta[*Rule]
	ServerGroups    []Delta[*ServerGroup]
	VirtualServers  []VirtualServerDelta
	ConntrackSync   Delta[*ConntrackSync]
	BFDInstances    []Delta[*BFDInstance]
	// BGP is the speaker's own change, BGPNeighbors its sessions'.
	BGP          Delta[*BGP]
	BGPNeighbors []Delta[*BGPNeighbor]
}

// Diff compares two configurations by their objects' keys. It is the one
// place that decides what "changed" means: consumers apply its verdicts.
func Diff(oldCfg, newCfg *Config) ConfigDiff {
	old, new := oldCfg.keyIndex(), newCfg.keyIndex()
	d := ConfigDiff{
		SyncGroups: diffList(old, new, oldCfg.SyncGroups, newCfg.SyncGroups, func(o, n *SyncGroup) Change {
			// The group coordinator holds one slot per member, in order.
			return settings(o, n, slices.Equal(o.Members, n.Members))
		}),
		Scripts: diffList(old, new, oldCfg.Scripts, newCfg.Scripts, func(o, n *Script) Change {
			// Another command (or user to run it as) is another tracker:
			// its past results say nothing about the new one.
			return settings(o, n, slices.Equal(o.Command, n.Command) && o.User == n.User && o.Group == n.Group)
		}),
		TrackFiles: diffList(old, new, oldCfg.TrackFiles, newCfg.TrackFiles, func(o, n *TrackFile) Change {
			return settings(o, n, o.File == n.File)
		}),
		TrackProcesses: diffList(old, new, oldCfg.TrackProcesses, newCfg.TrackProcesses, func(o, n *TrackProcess) Change {
			return settings(o, n, o.Process == n.Process && slices.Equal(o.Params, n.Params) && o.ParamMatch == n.ParamMatch && o.FullCommand == n.FullCommand)
		}),
		StaticAddresses: diffList(old, new, oldCfg.StaticAddresses, newCfg.StaticAddresses, kernelObject[*IPAddress]),
		StaticRoutes:    diffList(old, new, oldCfg.StaticRoutes, newCfg.StaticRoutes, kernelObject[*Route]),
		StaticRules:     diffList(old, new, oldCfg.StaticRules, newCfg.StaticRules, kernelObject[*Rule]),
		ServerGroups: diffList(old, new, oldCfg.ServerGroups, newCfg.ServerGroups, func(o, n *ServerGroup) Change {
			return settings(o, n, true)
		}),
		ConntrackSync: diffConntrackSync(oldCfg.ConntrackSync, newCfg.ConntrackSync),
		BFDInstances: diffList(old, new, oldCfg.BFDInstances, newCfg.BFDInstances, func(o, n *BFDInstance) Change {
			// A session is its two ends and its hop mode (RFC 5880
			// section 6.3: demultiplexed by the peers' addresses); timers,
			// passive, ttl and max_hops change on the running session (a
			// Poll sequence for timers, RFC 5880 section 6.8.3).
			return settings(o, n, o.Neighbor == n.Neighbor && o.Source == n.Source && o.Multihop == n.Multihop)
		}),
	}
	d.BGP, d.BGPNeighbors = diffBGP(old, new, oldCfg.BGP, newCfg.BGP)
	groups := map[string]Change{}
	for _, g := range d.SyncGroups {
		if g.New != nil {
			groups[g.New.Name] = g.Change
		}
	}
	for _, id := range diffList(old, new, oldCfg.Instances, newCfg.Instances, func(o, n *Instance) Change { return Unchanged }) {
		d.Instances = append(d.Instances, diffInstance(oldCfg, newCfg, old, new, id, groups))
	}
	for _, vd := range diffList(old, new, oldCfg.VirtualServers, newCfg.VirtualServers, func(o, n *VirtualServer) Change { return Unchanged }) {
		d.VirtualServers = append(d.VirtualServers, diffVirtualServer(old, new, vd))
	}
	return d
}

func diffInstance(oldCfg, newCfg *Config, old, new keyIndex, id Delta[*Instance], groups map[string]Change) InstanceDelta {
	d := InstanceDelta{Delta: id}
	if id.Change != Unchanged {
		return d
	}
	o, n := id.Old, id.New
	if !same(instanceIdentity(oldCfg, o), instanceIdentity(newCfg, n)) ||
		// A member of a group whose membership changed goes with the
		// group's new coordinator (a sync group's state is its members').
		n.SyncGroup != "" && groups[n.SyncGroup] == Recreated {
		d.Change = Recreated
		return d
	}
	d.VIPs = diffList(old, new, o.VIPs, n.VIPs, kernelObject[*IPAddress])
	d.ExcludedVIPs = diffList(old, new, o.ExcludedVIPs, n.ExcludedVIPs, kernelObject[*IPAddress])
	d.Routes = diffList(old, new, o.Routes, n.Routes, kernelObject[*Route])
	d.Rules = diffList(old, new, o.Rules, n.Rules, kernelObject[*Rule])
	if !same(instanceSettings(o), instanceSettings(n)) || changed(d.VIPs) || changed(d.ExcludedVIPs) || changed(d.Routes) || changed(d.Rules) {
		d.Change = InPlace
	}
	return d
}

// identity is what makes a VRRP instance the virtual router it is; any
// other setting is taken on by the running instance.
//   - VRID, and the address family: they name the virtual router and its
//     virtual MAC 00-00-5E-00-01-{VRID} (IPv4) or 00-00-5E-00-02-{VRID}
//     (IPv6) (RFC 5798 §7.3); an IPv4 and an IPv6 virtual router are two
//     routers (RFC 5798 §5.2.3, §1).
//   - The interface: a virtual router lives on one LAN (RFC 5798 §1).
//   - The version: VRRPv2 and v3 are different packet formats (RFC 5798
//     §5.2.1, §8.4).
//   - The socket: the multicast group adverts go to (RFC 5798 §5.1.1.2:
//     224.0.0.18 / ff02::12, keepalived's vrrp_mcast_group4/6 and
//     mcast_dst_ip), the source address, keepalived's unicast peers and
//     their TTL, and the authentication (RFC 3768 §5.3.6; AH sets up an
//     IPsec policy on the socket): a changed socket is a new one, and
//     adverts sent to the new peers are a new conversation.
//   - Sync group membership: the group's coordinator decides for its
//     members together.
//   - use_vmac (its interface, MAC and vmac_xmit_base): the interface
//     that carries the addresses and sends the adverts (keepalived.conf(5),
//     use_vmac); adding or removing it re-creates the instance alone.
type identity struct {
	VRID, Version   int
	Interface       string
	IPv6            bool
	Group           string
	SrcIP, McastSrc string
	Peers           []UnicastPeer
	TTL             int
	Auth            *Auth
	SyncGroup       string
	VMAC            *VMAC
}

func instanceIdentity(c *Config, in *Instance) identity {
	g := c.Global.VRRPMcastGroup4
	if in.IPv6 {
		g = c.Global.VRRPMcastGroup6
	}
	if in.McastDstIP.IsValid() {
		g = in.McastDstIP
	}
	return identity{VRID: in.VRID, Version: in.Version, Interface: in.Interface, IPv6: in.IPv6, Group: g.String(),
		SrcIP: in.UnicastSrcIP.String(), McastSrc: in.McastSrcIP.String(), Peers: in.UnicastPeers, TTL: in.UnicastTTL,
		Auth: in.Auth, SyncGroup: in.SyncGroup, VMAC: in.VMAC}
}

// instanceSettings is the instance without its children, which are
// compared by key.
func instanceSettings(in *Instance) Instance {
	s := *in
	s.VIPs, s.ExcludedVIPs, s.Routes, s.Rules = nil, nil, nil, nil
	return s
}

func diffVirtualServer(old, new keyIndex, vd Delta[*VirtualServer]) VirtualServerDelta {
	d := VirtualServerDelta{Delta: vd}
	if vd.Change != Unchanged {
		return d
	}
	o, n := vd.Old, vd.New
	for _, rd := range diffList(old, new, o.RealServers, n.RealServers, func(o, n *RealServer) Change { return Unchanged }) {
		r := RealServerDelta{Delta: rd}
		if rd.Change == Unchanged {
			r.Checkers = diffList(old, new, rd.Old.Checkers, rd.New.Checkers, func(o, n *Checker) Change { return settings(o, n, true) })
			rs, ns := *rd.Old, *rd.New
			rs.Checkers, ns.Checkers = nil, nil
			if !same(rs, ns) || changed(r.Checkers) {
				r.Change = InPlace
			}
		}
		d.RealServers = append(d.RealServers, r)
	}
	vs, ns := *o, *n
	vs.RealServers, ns.RealServers = nil, nil
	if !same(vs, ns) || slices.ContainsFunc(d.RealServers, func(r RealServerDelta) bool { return r.Change != Unchanged }) {
		d.Change = InPlace
	}
	return d
}

// diffList pairs the objects of two lists by key; same decides the change
// of an object present in both.
func diffList[T comparable](oldKeys, newKeys keyIndex, old, new []T, same func(o, n T) Change) []Delta[T] {
	byKey := map[Key]T{}
	for _, o := range old {
		byKey[oldKeys[o]] = o
	}
	var out []Delta[T]
	seen := map[Key]bool{}
	for _, n := range new {
		k := newKeys[n]
		seen[k] = true
		o, ok := byKey[k]
		if !ok {
			out = append(out, Delta[T]{Key: k, Change: Added, New: n})
			continue
		}
		out = append(out, Delta[T]{Key: k, Change: same(o, n), Old: o, New: n})
	}
	for _, o := range old {
		if k := oldKeys[o]; !seen[k] {
			out = append(out, Delta[T]{Key: k, Change: Removed, Old: o})
		}
	}
	return out
}

// settings is the change of an object whose identity is the same (id) or
// not, and whose other settings may differ.
func settings[T any](o, n T, id bool) Change {
	switch {
	case !id:
		return Recreated
	case !same(o, n):
		return InPlace
	}
	return Unchanged
}

// kernelObject is the change of an address, route or rule: the kernel
// has no "modify" for what is not part of the key (a route's gateway, an
// address's label), so any difference replaces it.
func kernelObject[T any](o, n T) Change {
	if same(o, n) {
		return Unchanged
	}
	return Recreated
}

func changed[T any](ds []Delta[T]) bool {
	return slices.ContainsFunc(ds, func(d Delta[T]) bool { return d.Change != Unchanged })
}

var (
	posType  = reflect.TypeFor[Pos]()
	modelPkg = reflect.TypeFor[Config]().PkgPath()
)

// same compares two values of the model as configuration: where a thing
// was written (Pos) and the parser's bookkeeping (unexported fields) do
// not count.
func same(a, b any) bool { return sameValue(reflect.ValueOf(a), reflect.ValueOf(b)) }

func sameValue(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !sameValue(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		t := a.Type()
		if t.PkgPath() != posType.PkgPath() && t.PkgPath() != modelPkg {
			break // another package's value (netip.Addr): its own ==
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Type == posType {
				continue
			}
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return a.Equal(b)
}
