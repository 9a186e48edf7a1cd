package config

import (
	"os"
	"strings"

	"tandem/internal/config/syntax"
)

// Options control how a configuration is read.
type Options struct {
	// ConfigID selects @ID lines; empty means the short host name, as
	// keepalived's default for -i.
	ConfigID string
	// Random returns a random integer in [min, max] for ${_RANDOM}; nil
	// means math/rand/v2. Tests set it to make a configuration
	// deterministic.
	Random func(min, max uint64) uint64
	// IPRoute2Dir holds the iproute2 name files (rt_tables, rt_protos,
	// rt_scopes, rt_dsfield); empty means DefaultIPRoute2Dir.
	IPRoute2Dir string
}

// Diagnostics are the messages about a configuration.
type Diagnostics = syntax.Diagnostics

// The severities of diagnostics.
const (
	Warning = syntax.Warning
	Error   = syntax.Error
)

// Load reads, preprocesses, parses and validates the configuration at path.
// The Config is usable only when the diagnostics hold no error.
func Load(path string, opts Options) (*Config, Diagnostics) {
	nodes, diags := syntax.ParseFile(path, syntaxOptions(opts))
	return build(nodes, diags, opts)
}

// Parse is Load for configuration text held in memory; name is used in
// positions and to resolve relative includes.
func Parse(name string, src []byte, opts Options) (*Config, Diagnostics) {
	nodes, diags := syntax.ParseBytes(name, src, syntaxOptions(opts))
	return build(nodes, diags, opts)
}

func syntaxOptions(opts Options) syntax.Options {
	return syntax.Options{ConfigID: configID(opts), Random: opts.Random}
}

func configID(opts Options) string {
	if opts.ConfigID != "" {
		return opts.ConfigID
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	short, _, _ := strings.Cut(h, ".")
	return short
}

func build(nodes []*syntax.Node, diags Diagnostics, opts Options) (*Config, Diagnostics) {
	p := &parser{diags: diags, rt: rtNames{dir: opts.IPRoute2Dir}}
	if p.rt.dir == "" {
		p.rt.dir = DefaultIPRoute2Dir
	}
	cfg := &Config{Global: defaultGlobal()}
	p.block("keepalived.conf", nodes, p.rootHandlers(cfg))
	p.finalize(cfg)
	p.validate(cfg)
	p.resolveGroupModes(cfg)
	resolveCheckerLogAll(cfg)
	return cfg, p.diags
}

func (p *parser) rootHandlers(cfg *Config) map[string]handler {
	with := func(f func(*node, *Config)) handler { return func(n *node) { f(n, cfg) } }
	return merge(p.rootOpsHandlers(&cfg.Global.Ops), map[string]handler{
		"global_defs":          with(p.global),
		"vrrp_script":          with(p.script),
		"vrrp_track_file":      with(p.trackFile),
		"track_file":           with(p.trackFile),
		"vrrp_track_process":   with(p.trackProcess),
		"vrrp_sync_group":      with(p.syncGroup),
		"vrrp_instance":        with(p.instance),
		"static_ipaddress":     p.addressBlock(&cfg.StaticAddresses, true),
		"static_routes":        p.routeBlock(&cfg.StaticRoutes, true),
		"static_rules":         p.ruleBlock(&cfg.StaticRules, true),
		"track_group":          with(p.trackGroup),
		"virtual_server_group": with(p.serverGroup),
		"virtual_server":       with(p.virtualServer),
		"garp_group":           with(p.garpGroup),
		"conntrack_sync":       with(p.conntrackSync),
		"bfd_instance":         with(p.bfdInstance),
		"bgp":                  with(p.bgp),
	})
}
