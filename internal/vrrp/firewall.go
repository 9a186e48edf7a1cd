package vrrp

import (
	"slices"

	"tandem/internal/config"
	"tandem/internal/firewall"
)

// Firewall keeps the drop rules of no-accept instances (internal/firewall):
// Sync makes it drop exactly drop, with settings s; needed false means no
// instance is no-accept and there is no table.
type Firewall interface {
	Sync(s firewall.Settings, needed bool, drop []firewall.Addr) error
}

// WithFirewall makes the engine keep fw's drop set: the addresses of every
// no-accept instance (firewall.NoAccept) that holds them, as keepalived's
// nftables mode does. It is updated before an instance adds its addresses
// and after it removes them, so that no packet to them is accepted in
// between (keepalived: vrrp_state_become_master, vrrp_restore_interface).
func WithFirewall(fw Firewall) EngineOption { return func(e *Engine) { e.fw = fw } }

// syncFirewall brings the firewall in line with the instances, counting
// the addresses of next (configurations about to be installed) as held.
func (e *Engine) syncFirewall(next ...*config.Instance) error {
	if e.fw == nil {
		return nil
	}
	s := firewall.SettingsOf(&e.cfg.Global.Firewall)
	needed := false
	var drop []firewall.Addr
	for _, in := range slices.Concat(e.insts, e.retiring) {
		if !firewall.NoAccept(in.cfg) {
			continue
		}
		needed = true
		// unremoved: a removal the kernel refused may have left them.
		if in.installed || in.unremoved {
			drop = append(drop, firewall.AddrsOf(in.cfg, s)...)
		}
	}
	for _, ic := range next {
		if firewall.NoAccept(ic) {
			needed = true
			drop = append(drop, firewall.AddrsOf(ic, s)...)
		}
	}
	return e.fw.Sync(s, needed, drop)
}

// updateFirewall is syncFirewall from the loop: a failure is logged, and
// the next update tries again.
func (e *Engine) updateFirewall(next ...*config.Instance) {
	if err := e.syncFirewall(next...); err != nil {
		e.log.Error("firewall not updated: traffic to no-accept addresses may be accepted or dropped wrongly", "err", err)
	}
}
