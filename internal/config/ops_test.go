package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOpsKeywords: the process keywords (notify FIFOs and their scripts,
// net_namespace, umask, max_auto_priority, min_auto_priority_delay) are
// read with keepalived's syntax into typed values, and their bad forms are
// errors naming the keyword.
func TestOpsKeywords(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name string
		src  string
		want Ops    // when msg is empty
		msg  string // in the error
	}{
		{name: "fifos", src: `global_defs {
    notify_fifo /run/all.fifo
    vrrp_notify_fifo /run/vrrp.fifo keepalived_script
    lvs_notify_fifo /run/lvs.fifo nobody nogroup
    vrrp_notify_fifo_script "/usr/bin/reader -v" nobody nogroup
    lvs_notify_fifo_script /usr/bin/lvsreader -q
    fifo_write_vrrp_states_on_reload
}`, want: Ops{
			NotifyFIFO:              FIFO{Path: "/run/all.fifo"},
			VRRPNotifyFIFO:          FIFO{Path: "/run/vrrp.fifo", User: "keepalived_script", Script: []string{"/usr/bin/reader", "-v"}, ScriptUser: "nobody", ScriptGroup: "nogroup"},
			LVSNotifyFIFO:           FIFO{Path: "/run/lvs.fifo", User: "nobody", Group: "nogroup", Script: []string{"/usr/bin/lvsreader", "-q"}},
			FIFOWriteStatesOnReload: true,
		}},
		{name: "fifo twice", src: "global_defs {\nnotify_fifo /a\nnotify_fifo /b\n}", msg: `notify_fifo: already set to "/a"`},
		{name: "same path twice", src: "global_defs {\nnotify_fifo /a\nlvs_notify_fifo /a\n}", msg: "the FIFO names must all be different"},
		{name: "fifo without name", src: "global_defs {\nvrrp_notify_fifo\n}", msg: "vrrp_notify_fifo takes 1 to 3 arguments"},
		{name: "net_namespace", src: "net_namespace blue\n", want: Ops{NetNamespace: "blue"}},
		{name: "net_namespace twice", src: "net_namespace blue\nnet_namespace red\n", msg: `net_namespace: already set to "blue"`},
		{name: "net_namespace path", src: "net_namespace ../x\n", msg: "not a namespace name"},
		{name: "umask octal", src: "global_defs {\numask 077\n}", want: Ops{Umask: u(0o77)}},
		{name: "umask hex", src: "global_defs {\numask 0x12\n}", want: Ops{Umask: u(0o22)}},
		{name: "umask decimal", src: "global_defs {\numask 18\n}", want: Ops{Umask: u(0o22)}},
		{name: "umask bits", src: "global_defs {\numask IWGRP|IWOTH\n}", want: Ops{Umask: u(0o22)}},
		{name: "umask bits spaced", src: "global_defs {\numask IRWXG | IRWXO\n}", want: Ops{Umask: u(0o77)}},
		{name: "umask too big", src: "global_defs {\numask 01000\n}", msg: "umask: invalid value"},
		{name: "umask unknown bit", src: "global_defs {\numask IWGRP|IFOO\n}", msg: `umask: unknown bit "IFOO"`},
		{name: "umask no or", src: "global_defs {\numask IWGRPIWOTH\n}", msg: "umask: expected '|'"},
		{name: "umask trailing or", src: "global_defs {\numask IWGRP|\n}", msg: "a bit name must follow the last '|'"},
		{name: "max_auto_priority", src: "global_defs {\nmax_auto_priority 10\n}", want: Ops{MaxAutoPriority: 10}},
		{name: "max_auto_priority alone", src: "global_defs {\nmax_auto_priority\n}", want: Ops{MaxAutoPriority: 99}},
		{name: "max_auto_priority -1", src: "global_defs {\nmax_auto_priority -1\n}", want: Ops{MaxAutoPriority: -1}},
		{name: "max_auto_priority range", src: "global_defs {\nmax_auto_priority 100\n}", msg: "max_auto_priority"},
		{name: "min_auto_priority_delay", src: "global_defs {\nmin_auto_priority_delay 500000\n}", want: Ops{MinAutoPriorityDelay: Duration(500 * time.Millisecond)}},
		{name: "vrrp thread", src: "global_defs {\nvrrp_rt_priority 50\nvrrp_priority -5\nvrrp_cpu_affinity 0 0\nvrrp_rlimit_rttime 20000\nvrrp_no_swap\n}",
			want: Ops{VRRPThread: ThreadSched{RTPriority: 50, Nice: -5, CPUs: []int{0}, RLimitRTTime: Duration(20 * time.Millisecond), NoSwap: true}}},
		{name: "bfd thread", src: "global_defs {\nbfd_rt_priority 60\nbfd_priority 3\nbfd_cpu_affinity 1\nbfd_rlimit_rtime 30000\nbfd_no_swap\n}",
			want: Ops{BFDThread: ThreadSched{RTPriority: 60, Nice: 3, CPUs: []int{1}, RLimitRTTime: Duration(30 * time.Millisecond), NoSwap: true}}},
		{name: "vrrp_rt_priority clamped high", src: "global_defs {\nvrrp_rt_priority 150\n}", want: Ops{VRRPThread: ThreadSched{RTPriority: 99}}},
		{name: "vrrp_rt_priority clamped low", src: "global_defs {\nvrrp_rt_priority 0\n}", want: Ops{VRRPThread: ThreadSched{RTPriority: 1}}},
		{name: "vrrp_rt_priority alone", src: "global_defs {\nvrrp_rt_priority\n}", msg: "vrrp_rt_priority takes 1 argument"},
		{name: "vrrp_rt_priority word", src: "global_defs {\nvrrp_rt_priority high\n}", msg: `vrrp_rt_priority: "high" is not an integer`},
		{name: "vrrp_priority range", src: "global_defs {\nvrrp_priority -21\n}", msg: "vrrp_priority"},
		{name: "vrrp_rlimit_rtime 1", src: "global_defs {\nvrrp_rlimit_rtime 1\n}", want: Ops{VRRPThread: ThreadSched{RLimitRTTime: Duration(2 * time.Microsecond)}}},
		{name: "vrrp_rlimit_rttime 0", src: "global_defs {\nvrrp_rlimit_rttime 0\n}", msg: "vrrp_rlimit_rttime"},
		{name: "vrrp_cpu_affinity bad", src: "global_defs {\nvrrp_cpu_affinity 0 100000\n}", msg: "vrrp_cpu_affinity"},
		{name: "min_auto_priority_delay range", src: "global_defs {\nmin_auto_priority_delay 0\n}", msg: "min_auto_priority_delay"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := Parse("o.conf", []byte(tc.src+"\n"), Options{ConfigID: "x"})
			if tc.msg != "" {
				for _, d := range diags {
					if d.Severity == Error && strings.Contains(d.Msg, tc.msg) {
						return
					}
				}
				t.Fatalf("no error containing %q; got %v", tc.msg, diags)
			}
			if diags.HasErrors() {
				t.Fatalf("errors: %v", diags)
			}
			got := cfg.Global.Ops
			for _, f := range []*FIFO{&got.NotifyFIFO, &got.VRRPNotifyFIFO, &got.LVSNotifyFIFO} {
				f.Pos = Pos{}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ops (-want +got):\n%s", d)
			}
			// tandem fmt writes them back as they were read.
			cfg2, diags2, text := roundTrip(t, cfg)
			if len(diags2) > 0 {
				t.Errorf("formatted text: %v\n%s", diags2, text)
			}
			if d := cmp.Diff(dump(t, cfg), dump(t, cfg2)); d != "" {
				t.Errorf("parse(fmt(parse(x))) != parse(x):\n%s\n%s", d, text)
			}
		})
	}
}

// TestFIFOScriptWithoutFIFO: a FIFO script without its FIFO is never
// started (keepalived opens the script with the FIFO); Tandem says so.
func TestFIFOScriptWithoutFIFO(t *testing.T) {
	_, diags := Parse("o.conf", []byte("global_defs {\n    lvs_notify_fifo_script /bin/true\n}\n"), Options{ConfigID: "x"})
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags[0].String(), "o.conf:2:5") || !strings.Contains(diags[0].Msg, "no lvs_notify_fifo for it to read") {
		t.Fatalf("diagnostics: %v", diags)
	}
}

// TestGarpGroup: garp_group blocks are read with either interface form, and
// an interface in two groups is an error, as keepalived's "garp_group
// already specified".
func TestGarpGroup(t *testing.T) {
	src := `garp_group {
    garp_interval 0.01
    gna_interval 0.02
    interface eth0
}
garp_group {
    garp_interval 0.5
    interfaces {
        eth1
        eth2
    }
}
`
	cfg, diags := Parse("g.conf", []byte(src), Options{ConfigID: "x"})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	want := []*GarpGroup{
		{GarpInterval: Duration(10 * time.Millisecond), GnaInterval: Duration(20 * time.Millisecond), Interfaces: []string{"eth0"}},
		{GarpInterval: Duration(500 * time.Millisecond), Interfaces: []string{"eth1", "eth2"}},
	}
	for _, g := range cfg.GarpGroups {
		g.Pos = Pos{}
	}
	if d := cmp.Diff(want, cfg.GarpGroups); d != "" {
		t.Errorf("garp groups (-want +got):\n%s", d)
	}
	cfg2, diags2, text := roundTrip(t, cfg)
	if d := cmp.Diff(dump(t, cfg), dump(t, cfg2)); d != "" || len(diags2) > 0 {
		t.Errorf("round trip: %v %s\n%s", diags2, d, text)
	}
	_, diags = Parse("g.conf", []byte(src+"garp_group {\n    interface eth2\n}\n"), Options{ConfigID: "x"})
	if !diags.HasErrors() || !strings.Contains(diags[0].Msg, "interface eth2 is already in the garp_group at g.conf:6:1") {
		t.Errorf("interface in two groups: %v", diags)
	}
}
