package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// valueCase is one snippet for TestValues: the diagnostics it must give
// exactly, and what the model must hold.
type valueCase struct {
	name  string
	src   string
	want  []wantDiag
	check func(t *testing.T, cfg *Config)
}

func runValueCases(t *testing.T, tests []valueCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			if tt.check != nil && !t.Failed() {
				tt.check(t, cfg)
			}
		})
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func global(lines string) string { return "global_defs {\n" + lines + "}\n" }

// TestGlobalValues: issue 12 items 8, 12, 13; the ranges and forms are
// keepalived 2.2.7's global_parser.c, checked against `keepalived -t`.
func TestGlobalValues(t *testing.T) {
	runValueCases(t, []valueCase{
		{
			name: "garp and gna intervals above 1 s",
			src:  global("  vrrp_garp_interval 2.5\n  vrrp_gna_interval 0.000001\n"),
			want: []wantDiag{w(2, 22, "vrrp_garp_interval 2.5 s is very large")},
			check: func(t *testing.T, c *Config) {
				equal(t, "garp", c.Global.VRRPGarpInterval, Duration(2500*time.Millisecond))
				equal(t, "gna", c.Global.VRRPGnaInterval, Duration(time.Microsecond))
			},
		},
		{
			name: "garp interval at keepalived's maximum",
			src:  global("  vrrp_gna_interval 4294.967295\n"),
			want: []wantDiag{w(2, 21, "vrrp_gna_interval 4294.967295 s is very large")},
			check: func(t *testing.T, c *Config) {
				equal(t, "gna", c.Global.VRRPGnaInterval, Duration(4294967295*time.Microsecond))
			},
		},
		{
			name: "garp interval 0 and above the maximum",
			src:  global("  vrrp_garp_interval 0\n  vrrp_gna_interval 4294.967296\n"),
			want: []wantDiag{
				e(2, 22, `vrrp_garp_interval: "0" is not a number of seconds in 0.000001..4294.967295`),
				e(3, 21, `vrrp_gna_interval: "4294.967296" is not a number of seconds in 0.000001..4294.967295`),
			},
		},
		{
			name: "dynamic_interfaces allow_if_changes",
			src:  global("  dynamic_interfaces allow_if_changes\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "dynamic", c.Global.DynamicInterfaces, true)
				equal(t, "allow", c.Global.AllowIfChanges, true)
			},
		},
		{
			name: "dynamic_interfaces alone",
			src:  global("  dynamic_interfaces\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "dynamic", c.Global.DynamicInterfaces, true)
				equal(t, "allow", c.Global.AllowIfChanges, false)
			},
		},
		{
			name: "dynamic_interfaces unknown option",
			src:  global("  dynamic_interfaces yes\n"),
			want: []wantDiag{e(2, 22, `dynamic_interfaces: unknown option "yes" (keepalived knows only allow_if_changes)`)},
		},
		{
			name: "garp master refresh with a fraction",
			src:  global("  vrrp_garp_master_refresh 0.5\n  vrrp_garp_master_delay 1.5\n  vrrp_garp_lower_prio_delay 2.0\n"),
			want: []wantDiag{
				e(2, 28, `vrrp_garp_master_refresh: "0.5" is not a whole number of seconds (keepalived reads an integer here)`),
				e(3, 26, `vrrp_garp_master_delay: "1.5" is not a whole number of seconds`),
				// keepalived refuses "2.0" too (read_unsigned_strvec).
				e(4, 30, `vrrp_garp_lower_prio_delay: "2.0" is not an integer in 0..4294`),
			},
		},
		{
			name: "garp whole seconds",
			src:  global("  vrrp_garp_master_refresh 60\n  vrrp_garp_master_delay 4294\n  vrrp_garp_master_repeat 20000\n  vrrp_garp_lower_prio_repeat 0\n"),
			check: func(t *testing.T, c *Config) {
				equal(t, "refresh", c.Global.Garp.MasterRefresh, Duration(time.Minute))
				equal(t, "delay", c.Global.Garp.MasterDelay, Duration(4294*time.Second))
				equal(t, "repeat", c.Global.Garp.MasterRepeat, 20000)
				equal(t, "lower prio repeat", c.Global.Garp.LowerPrioRepeat, 0)
			},
		},
		{
			name: "garp repeat 0 and delay above the maximum",
			src:  global("  vrrp_garp_master_repeat 0\n  vrrp_garp_master_delay 4295\n"),
			want: []wantDiag{
				e(2, 27, "vrrp_garp_master_repeat must be greater than 0"),
				e(3, 26, `vrrp_garp_master_delay: "4295" is not an integer in 0..4294`),
			},
		},
	})
}
