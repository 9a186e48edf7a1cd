package vrrp

import "tandem/internal/config"

// WithBeforeTakeover makes the engine call f, and wait for it, when an
// instance becoming MASTER is about to add its addresses: before any
// packet for them can reach this host. conntrack_sync commits the flows
// replicated from the old master there (internal/ctsync), so that their
// next packets find their connection tracking entries, NAT mappings
// included, instead of racing the commit. f runs in the engine's loop:
// it must be quick and bounded.
func WithBeforeTakeover(f func(*config.Instance)) EngineOption {
	return func(e *Engine) { e.beforeTakeover = f }
}
