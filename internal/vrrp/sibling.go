package vrrp

import "slices"

// Two instances may share a VRID on one interface and family when they
// talk in different conversations, as keepalived allows (vrrp.c
// check_vrid_conflicts; config.validateVRIDs): one multicast and one
// unicast, multicast to different groups, or unicast to different peers.
// Every raw VRRP socket on the interface receives every advert, so each
// instance leaves to its sibling the adverts that are the sibling's.

// siblingOwns reports whether m, of in's VRID, belongs to another
// instance on the same interface and family rather than to in.
func (e *Engine) siblingOwns(in *instance, m *Message) bool {
	if m.VRID != in.recv.VRID || in.hears(m) {
		return false
	}
	for _, o := range e.insts {
		if o != in && o.cfg.Interface == in.cfg.Interface && o.cfg.IPv6 == in.cfg.IPv6 && o.recv.VRID == m.VRID && o.hears(m) {
			return true
		}
	}
	return false
}

// hears reports whether m is addressed to in's conversation: sent to its
// multicast group, or, in unicast mode, sent by one of its peers.
func (in *instance) hears(m *Message) bool {
	if !m.Dst.IsValid() {
		return true // no destination known: cannot tell, keep it
	}
	if m.Dst.IsMulticast() {
		return !in.recv.Unicast && slices.Contains(in.conn.Dests(), m.Dst)
	}
	return in.recv.Unicast && slices.ContainsFunc(in.recv.Peers, func(p UnicastPeer) bool { return p.Addr == m.Src })
}
