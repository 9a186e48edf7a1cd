package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/netio"
	"tandem/internal/vrrp"
)

// Static addresses, routes and rules are the host's, not a virtual
// router's: keepalived adds them when its VRRP process starts, whatever
// the instances' states, and never moves them (keepalived.conf(5)
// static_ipaddress, static_routes, static_rules). A static address has
// its dev (config fills in default_interface for one that names none);
// a static route without dev goes where the kernel resolves its gateway,
// so no interface is passed down. They go through the VRRP engine's
// vrrp.Host: netio's calls, the ones that install the VIPs.

// installStatic removes what a previous run may have left and then adds
// cfg's static entries, as keepalived's start_vrrp does on a fresh start
// ("Clear leftover static entries", then "Set static entries"). It runs
// before the VRRP sockets open: a static address may be an instance's
// unicast_src_ip. A refused entry is logged and the others go on, as in
// keepalived.
func installStatic(k vrrp.Addresses, cfg *config.Config, log *slog.Logger) {
	for _, err := range removeStatic(k, cfg) {
		log.Debug("static entry left over from an earlier run not removed", "err", err)
	}
	for _, err := range addStatic(k, cfg.StaticAddresses, cfg.StaticRoutes, cfg.StaticRules) {
		log.Error("static entry not added", "err", err)
	}
}

// reloadStatic applies a reload's static changes as config.Diff says:
// what is gone or changed is removed (rules, routes, then addresses),
// what is new or changed is added (addresses, routes, then rules);
// unchanged entries are not touched. It returns the kernel's refusals.
func reloadStatic(k vrrp.Addresses, d config.ConfigDiff) []error {
	var errs []error
	for _, r := range d.StaticRules {
		if r.Gone() {
			errs = appendErr(errs, k.DelRule(r.Old), "remove static rule %s", r.Key)
		}
	}
	for _, r := range d.StaticRoutes {
		if r.Gone() {
			errs = appendErr(errs, k.DelRoute("", r.Old), "remove static route %s", r.Key)
		}
	}
	for _, a := range d.StaticAddresses {
		if a.Gone() {
			errs = appendErr(errs, k.DelAddress("", a.Old), "remove static address %s", a.Key)
		}
	}
	var addrs []*config.IPAddress
	var routes []*config.Route
	var rules []*config.Rule
	for _, a := range d.StaticAddresses {
		if a.Arrived() {
			addrs = append(addrs, a.New)
		}
	}
	for _, r := range d.StaticRoutes {
		if r.Arrived() {
			routes = append(routes, r.New)
		}
	}
	for _, r := range d.StaticRules {
		if r.Arrived() {
			rules = append(rules, r.New)
		}
	}
	return append(errs, addStatic(k, addrs, routes, rules)...)
}

// addStatic adds addresses first, then the routes that may go through
// them, then the rules that may point at their tables.
func addStatic(k vrrp.Addresses, addrs []*config.IPAddress, routes []*config.Route, rules []*config.Rule) []error {
	var errs []error
	for _, a := range addrs {
		errs = appendErr(errs, k.AddAddress("", a), "add static address %s dev %s", a.Prefix, a.Dev)
	}
	for _, r := range routes {
		errs = appendErr(errs, k.AddRoute("", r), "add static route %s", r.Dst)
	}
	for _, r := range rules {
		errs = appendErr(errs, k.AddRule(r), "add static rule at %s", r.Pos)
	}
	return errs
}

// removeStatic removes cfg's static entries in the reverse order, as
// keepalived does when its VRRP process stops (vrrp_daemon.c: rules,
// routes, then addresses). Entries already gone are not errors (netio).
func removeStatic(k vrrp.Addresses, cfg *config.Config) []error {
	var errs []error
	for _, r := range cfg.StaticRules {
		errs = appendErr(errs, k.DelRule(r), "remove static rule at %s", r.Pos)
	}
	for _, r := range cfg.StaticRoutes {
		errs = appendErr(errs, k.DelRoute("", r), "remove static route %s", r.Dst)
	}
	for _, a := range cfg.StaticAddresses {
		errs = appendErr(errs, k.DelAddress("", a), "remove static address %s dev %s", a.Prefix, a.Dev)
	}
	return errs
}

func appendErr(errs []error, err error, format string, args ...any) []error {
	if err == nil {
		return errs
	}
	return append(errs, fmt.Errorf(format+": %w", append(args, err)...))
}

// staticKeeper puts back the static entries that someone else deletes,
// as keepalived's netlink reflector does (keepalived_netlink.c,
// vrrp_if.c interface_up; reinstate_static_address, _route, _rule):
//   - a static address deleted from its interface is added again;
//   - a static route or rule deleted is added again if keepalived
//     watches its family's deletions: when a static route (rule) of the
//     family names a track_group, or an instance has a virtual route
//     (rule) of the family without no_track;
//   - when an interface comes up, the static addresses and routes on it
//     are added again (the kernel drops routes with their interface
//     going down, without telling).
//
// Entries with no_track are left alone. The kernel dropping changes
// (Overrun) may have hidden a deletion: every tracked entry is added
// again, which changes nothing for those present.
type staticKeeper struct {
	k   vrrp.Addresses
	log *slog.Logger

	mu  sync.Mutex // cfg
	cfg *config.Config
}

// set makes cfg's static entries the ones kept. A reload calls it before
// it removes the entries cfg no longer has, so that they stay removed.
func (s *staticKeeper) set(cfg *config.Config) {
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
}

// run follows the host's changes until ctx ends.
func (s *staticKeeper) run(ctx context.Context) error {
	ch := make(chan netio.Change)
	errc := make(chan error, 1)
	go func() { errc <- netio.WatchChanges(ctx, ch) }()
	for {
		select {
		case c := <-ch:
			for _, err := range s.handle(c) {
				s.log.Error("deleted static entry not restored", "err", err)
			}
		case err := <-errc:
			return err
		}
	}
}

// handle adds again the static entries c calls for, and returns the
// kernel's refusals.
func (s *staticKeeper) handle(c netio.Change) []error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	// Which families' route and rule deletions keepalived watches: those
	// of a static entry with a track_group or of an instance's virtual
	// route (rule) without no_track (vrrp.c vrrp_complete_instance,
	// process_static_entries).
	routeFams, ruleFams := map[bool]bool{}, map[bool]bool{}
	for _, r := range cfg.StaticRoutes {
		routeFams[r.Dst.Addr().Is6()] = routeFams[r.Dst.Addr().Is6()] || r.TrackGroup != ""
	}
	for _, r := range cfg.StaticRules {
		ruleFams[ruleIs6(r)] = ruleFams[ruleIs6(r)] || r.TrackGroup != ""
	}
	for _, in := range cfg.Instances {
		for _, r := range in.Routes {
			routeFams[r.Dst.Addr().Is6()] = routeFams[r.Dst.Addr().Is6()] || !r.NoTrack
		}
		for _, r := range in.Rules {
			ruleFams[ruleIs6(r)] = ruleFams[ruleIs6(r)] || !r.NoTrack
		}
	}
	var addrs []*config.IPAddress
	var routes []*config.Route
	var rules []*config.Rule
	for _, a := range cfg.StaticAddresses {
		if a.NoTrack {
			continue
		}
		switch c.Kind {
		case netio.AddressDeleted:
			if a.Prefix.Addr() != c.Addr {
				continue
			}
		case netio.InterfaceUp:
			if a.Dev != c.Interface {
				continue
			}
		case netio.Overrun:
		default:
			continue
		}
		addrs = append(addrs, a)
	}
	for _, r := range cfg.StaticRoutes {
		if r.NoTrack {
			continue
		}
		switch c.Kind {
		case netio.RouteDeleted:
			if !routeFams[c.V6] || r.Dst.Masked() != c.Dst.Masked() || routeTable(r) != c.Table {
				continue
			}
		case netio.InterfaceUp:
			if r.Dev != c.Interface {
				continue
			}
		case netio.Overrun:
			if !routeFams[r.Dst.Addr().Is6()] {
				continue
			}
		default:
			continue
		}
		routes = append(routes, r)
	}
	for _, r := range cfg.StaticRules {
		if r.NoTrack || !ruleFams[ruleIs6(r)] {
			continue
		}
		if (c.Kind == netio.RuleDeleted && c.V6 == ruleIs6(r)) || c.Kind == netio.Overrun {
			rules = append(rules, r)
		}
	}
	for _, a := range addrs {
		s.log.Info("restoring deleted static address", "address", a.Prefix, "dev", a.Dev)
	}
	for _, r := range routes {
		s.log.Info("restoring deleted static route", "route", r.Dst, "table", routeTable(r))
	}
	for _, r := range rules {
		s.log.Info("restoring deleted static rule", "rule", r.Pos.String())
	}
	return addStatic(s.k, addrs, routes, rules)
}

// ruleIs6 is a rule's family: IPv6 if its from or to prefix is, else IPv4
// (keepalived's default for a rule that names neither).
func ruleIs6(r *config.Rule) bool {
	return (r.From.IsValid() && r.From.Addr().Is6()) || (r.To.IsValid() && r.To.Addr().Is6())
}

// routeTable is the table a route goes to: its own, else main.
func routeTable(r *config.Route) uint32 {
	if r.Table == 0 {
		return unix.RT_TABLE_MAIN
	}
	return uint32(r.Table)
}
