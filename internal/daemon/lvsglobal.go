package daemon

import (
	"errors"
	"time"

	"tandem/internal/config"
	"tandem/internal/lvs"
	"tandem/internal/lvs/ipvs"
	"tandem/internal/lvs/nft"
	"tandem/internal/lvs/xdp"
)

// The global_defs keywords about the data plane as a whole, and the
// virtual servers' persistence_engine, per data plane
// (keepalived.conf(5) global_defs, virtual_server):
//
//   - lvs_flush: at start, before anything is programmed, IPVS's whole
//     table is flushed, other programs' services included, which is what
//     the keyword asks for (keepalived check_daemon.c, not on a reload).
//     nftables: Tandem's own tables are deleted, so that the first
//     reconcile builds every service afresh instead of adopting what a
//     previous run left; nothing else in the ruleset is Tandem's to touch.
//   - lvs_flush_onstop: at stop, IPVS's whole table is flushed. With VS,
//     each of Tandem's services is deleted whole, the kernel dropping its
//     real servers, which is what Tandem always does at stop (keepalived
//     without the keyword deletes the real servers one by one first: the
//     end state is the same). nftables: Tandem's tables are always
//     deleted whole at stop, which is the keyword's effect on them.
//   - lvs_timeouts: IPVS's connection timeouts are set at start and on
//     every reload, a timeout not given being the kernel's own, and put
//     back at stop (keepalived ipvswrapper.c). xdp: tcp and udp are its
//     flow table's idle timeouts (xdp.Kernel.SetTimeouts), tcpfin has no
//     counterpart. nftables has no IPVS connection table and warns.
//   - persistence_engine: IPVS only (IPVS_SVC_ATTR_PE_NAME); nftables has
//     none, and says so.

// timeoutsOf is lvs_timeouts as the data plane takes them.
func timeoutsOf(g *config.Global) lvs.Timeouts {
	t := g.LVSTimeouts
	return lvs.Timeouts{TCP: time.Duration(t.TCP), TCPFin: time.Duration(t.TCPFin), UDP: time.Duration(t.UDP)}
}

// startPlane applies lvs_flush (atStart: not when a reload opens the
// data plane, as keepalived flushes only when it starts) and then what
// configurePlane does, to a data plane just opened. A refused flush is
// logged, as keepalived logs it, and the start goes on: the reconciler
// corrects what it finds.
func (b *balancer) startPlane(cfg *config.Config, atStart bool) {
	if cfg.Global.LVSFlush && atStart && b.kernel != nil {
		var err error
		switch k := b.kernel.(type) {
		case *ipvs.Kernel:
			err = k.FlushAll()
		case *nft.Kernel:
			err = k.Flush()
		}
		if err != nil {
			b.log.Error("lvs_flush: data plane not flushed", "dataplane", b.name, "err", err)
		} else {
			b.log.Info("lvs_flush: data plane flushed at start", "dataplane", b.name, "pos", cfg.Global.Pos.String())
		}
	}
	b.configurePlane(cfg)
}

// configurePlane applies cfg's lvs_timeouts, gives the XDP data plane the
// VIPs' interfaces, and says what the data plane in use cannot do of
// lvs_timeouts and persistence_engine. It runs at start and on every
// reload.
func (b *balancer) configurePlane(cfg *config.Config) {
	b.clientInterfaces(cfg)
	t := timeoutsOf(&cfg.Global)
	switch k := b.kernel.(type) {
	case *ipvs.Kernel:
		if err := k.SetTimeouts(t); err != nil {
			b.log.Error("lvs_timeouts not applied", "dataplane", b.name, "err", err)
		}
	case *xdp.Kernel:
		if err := k.SetTimeouts(t); err != nil {
			b.log.Error("lvs_timeouts not applied", "dataplane", b.name, "err", err)
		}
		if t.TCPFin > 0 {
			b.log.Warn("lvs_timeouts tcpfin: the xdp data plane does not follow TCP's state; a closed connection's flow keeps the tcp timeout",
				"dataplane", b.name, "pos", cfg.Global.Pos.String())
		}
		b.warnLimits(cfg)
	case *nft.Kernel:
		if t != (lvs.Timeouts{}) {
			b.log.Warn("lvs_timeouts: the nftables data plane has no IPVS connection table to time out (its NAT flows follow the kernel's conntrack timeouts, its DR flows keep no state); ignored, the IPVS data plane applies them",
				"dataplane", b.name, "pos", cfg.Global.Pos.String())
		}
		b.warnLimits(cfg)
	}
}

// warnLimits says what the nftables or xdp data plane cannot do of cfg:
// persistence engines, and what planeLimits finds.
func (b *balancer) warnLimits(cfg *config.Config) {
	for _, vs := range cfg.VirtualServers {
		if vs.PersistenceEngine != "" {
			b.log.Warn("persistence_engine: the "+planeTitle[b.name]+" data plane has no persistence engines; ignored, the IPVS data plane applies it",
				"dataplane", b.name, "vs", vs.Name(), "engine", vs.PersistenceEngine, "pos", vs.Pos.String())
		}
	}
	for _, d := range planeLimits(cfg, b.name) {
		b.log.Warn(d.Msg, "dataplane", b.name, "pos", d.Pos.String())
	}
}

// planeTitle is how messages name a data plane.
var planeTitle = map[string]string{DataplaneNFT: "nftables", DataplaneXDP: "xdp"}

// desired is cfg's data-plane state for the kernel in use.
func (b *balancer) desired(d *lvs.Desired) *lvs.Desired {
	switch b.kernel.(type) {
	case *nft.Kernel, *xdp.Kernel:
		return d.WithoutPersistenceEngines()
	}
	return d
}

// stopPlane removes what the balancer programmed, and with
// lvs_flush_onstop (no argument) everything in IPVS's table.
func (b *balancer) stopPlane() error {
	var flushErr error
	if k, ok := b.kernel.(*ipvs.Kernel); ok && b.cfg.Global.LVSFlushOnStop == config.FlushAll {
		flushErr = k.FlushAll()
	}
	return errors.Join(flushErr, b.kernel.Close())
}
