package config

import "slices"

// strictInstance applies what keepalived's strict mode (vrrp_strict,
// strict_mode) makes of an instance, as vrrp_complete_instance does:
// settings RFC 3768 / RFC 5798 do not allow are reset with a warning,
// and the defaults that differ under strict mode are set. It runs once
// the instance's own settings and the global defaults are resolved; the
// firewall (no accept) and the receive side (an owner ignores adverts,
// vrrp.RecvConfig) act on the result. keepalived.conf(5) vrrp_strict.
func (p *parser) strictInstance(g *Global, in *Instance) {
	if !in.StrictMode {
		return
	}
	u := in.unset
	name := "vrrp_instance " + in.Name
	owner := in.Priority == 255
	if (in.State == StateMaster) != owner {
		p.warnf(in.Pos, "%s: strict mode: state MASTER must match being the address owner (priority 255); state %s ignored", name, in.State)
		in.State = StateBackup
		if owner {
			in.State = StateMaster
		}
	}
	if in.Auth != nil {
		p.warnf(in.Pos, "%s: strict mode does not support authentication; ignored", name)
		in.Auth = nil
	}
	if in.PreemptDelay > 0 {
		p.warnf(in.Pos, "%s: preempt_delay is incompatible with strict mode; reset to 0", name)
		in.PreemptDelay = 0
	}
	if len(in.UnicastPeers) > 0 {
		p.errorf(in.Pos, "%s: unicast peers are not supported in strict mode", name)
	}
	if in.NoVirtualIPAddr {
		p.warnf(in.Pos, "%s: no_virtual_ipaddress is incompatible with strict mode; cleared", name)
		in.NoVirtualIPAddr = false
	}
	if len(in.VIPs) == 0 {
		p.errorf(in.Pos, "%s: strict mode needs at least one virtual_ipaddress", name)
	}
	if in.IPv6 && in.Version == 2 {
		p.warnf(in.Pos, "%s: strict mode: IPv6 cannot use VRRP version 2; using version 3", name)
		in.Version = 3
	}
	// RFC 5798 §5.2.9: an IPv6 advert's first address is the link-local
	// one (keepalived checks it for multicast instances).
	if in.IPv6 && len(in.UnicastPeers) == 0 && len(in.VIPs) > 0 && !in.VIPs[0].Prefix.Addr().IsLinkLocalUnicast() {
		p.warnf(in.VIPs[0].Pos, "%s: strict mode: the first IPv6 virtual_ipaddress must be link-local (RFC 5798 §5.2.9)", name)
	}
	// Accept mode: unset, only the address owner accepts; VRRPv2 has no
	// accept mode at all (RFC 3768).
	switch {
	case u.accept == nil:
		in.Accept = owner
	case in.Accept && !owner && in.Version == 2:
		p.warnf(in.Pos, "%s: accept mode does not comply with VRRPv2 (RFC 3768) in strict mode; reset", name)
		in.Accept = false
	}
	// The RFC behaviour of a master hearing adverts: no advert in answer
	// to a lower priority, none before stepping down, no ARP refresh.
	if u.lowerNoAdv != nil && !*u.lowerNoAdv {
		p.warnf(in.Pos, "%s: strict mode requires lower_prio_no_advert; set", name)
	}
	in.LowerPrioNoAdv = true
	if u.higherSend != nil && *u.higherSend {
		p.warnf(in.Pos, "%s: strict mode requires higher_prio_send_advert to be clear; cleared", name)
	}
	in.HigherPrioSend = false
	if in.Garp.LowerPrioRepeat != g.Garp.LowerPrioRepeat && in.Garp.LowerPrioRepeat != 0 ||
		in.Garp.LowerPrioDelay != g.Garp.LowerPrioDelay && in.Garp.LowerPrioDelay != 0 {
		p.warnf(in.Pos, "%s: strict mode requires no garp_lower_prio_repeat and garp_lower_prio_delay; reset", name)
	}
	in.Garp.LowerPrioRepeat, in.Garp.LowerPrioDelay = 0, 0
}

// resolveGroupModes applies what a sync group decides for its members,
// once membership is known (validate): notify_priority_changes (the
// instance's own setting, else its group's, else the global one,
// keepalived vrrp_complete_instance), and the weights of the members'
// trackers.
func (p *parser) resolveGroupModes(cfg *Config) {
	groups := map[string]*SyncGroup{}
	for _, g := range cfg.SyncGroups {
		groups[g.Name] = g
	}
	for _, in := range cfg.Instances {
		g := groups[in.SyncGroup]
		switch {
		case in.unset.notifyPrio != nil:
			in.NotifyPrioChgs = *in.unset.notifyPrio
		case g != nil && g.notifyPrio != nil:
			in.NotifyPrioChgs = *g.notifyPrio
		default:
			in.NotifyPrioChgs = cfg.Global.VRRPNotifyPriorityChgs
		}
		if (g != nil && !g.TrackingWeight) || in.Priority == 255 {
			p.unweightTrackers(in, g != nil && !g.TrackingWeight)
		}
	}
}

// unweightTrackers is keepalived's rule for the trackers of a sync group
// member (unless the group has sync_group_tracking_weight, or the
// deprecated global_tracking) and of an address owner, whose priority
// must not float (vrrp_complete_instance): a weighted track_interface
// becomes a fault-only one for a group member and is dropped for an
// owner; weighted scripts, processes and BFD sessions are dropped; a track_file
// without its own weight becomes fault-only, one with a weight is
// dropped. Each is named in a warning.
func (p *parser) unweightTrackers(in *Instance, group bool) {
	why := "address owner"
	if group {
		why = "sync group " + in.SyncGroup + " (no sync_group_tracking_weight)"
	}
	name := "vrrp_instance " + in.Name
	ifs := in.TrackInterfaces[:0]
	for _, r := range in.TrackInterfaces {
		if r.Weight != 0 {
			p.warnf(r.Pos, "%s: ignoring the weight of track_interface %s: %s", name, r.Name, why)
			if !group {
				continue
			}
			r.Weight = 0
		}
		ifs = append(ifs, r)
	}
	in.TrackInterfaces = ifs
	drop := func(kind string, refs []TrackRef) []TrackRef {
		return slices.DeleteFunc(refs, func(r TrackRef) bool {
			if r.Weight == 0 {
				return false
			}
			p.warnf(r.Pos, "%s: ignoring %s %s, which has a weight: %s", name, kind, r.Name, why)
			return true
		})
	}
	in.TrackScripts = drop("track_script", in.TrackScripts)
	in.TrackProcesses = drop("track_process", in.TrackProcesses)
	in.TrackBFD = drop("track_bfd", in.TrackBFD)
	for i := range in.TrackFiles {
		if r := &in.TrackFiles[i]; !r.WeightSet && r.Weight != 0 {
			p.warnf(r.Pos, "%s: track_file %s without its own weight is fault-only: %s (specify weight 0)", name, r.Name, why)
			r.Weight, r.WeightSet = 0, true
		}
	}
	in.TrackFiles = drop("track_file", in.TrackFiles)
}
