package daemon

import (
	"fmt"
	"log/slog"

	"tandem/internal/config"
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
