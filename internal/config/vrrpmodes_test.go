package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// parseMsgs parses src and returns the model and its diagnostics' texts.
func parseMsgs(t *testing.T, src string) (*Config, []string) {
	t.Helper()
	cfg, diags := Parse("t.conf", []byte(src), Options{})
	var msgs []string
	for _, d := range diags {
		msgs = append(msgs, d.Msg)
	}
	return cfg, msgs
}

func hasMsg(msgs []string, part string) bool {
	return slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, part) })
}

// Strict mode resets what RFC 3768 / RFC 5798 do not allow, with a
// warning each, as keepalived's vrrp_complete_instance does.
func TestStrictModeFixups(t *testing.T) {
	cfg, msgs := parseMsgs(t, `global_defs {
    vrrp_strict
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 1
    priority 100
    preempt_delay 5
    lower_prio_no_advert off
    higher_prio_send_advert
    garp_lower_prio_repeat 3
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        10.0.0.1/24
    }
}
`)
	in := cfg.Instances[0]
	if in.State != StateBackup || in.Auth != nil || in.PreemptDelay != 0 || in.Accept ||
		!in.LowerPrioNoAdv || in.HigherPrioSend || in.Garp.LowerPrioRepeat != 0 || in.Garp.LowerPrioDelay != 0 {
		t.Errorf("strict instance: state %v auth %v preempt_delay %v accept %v lower_prio_no_advert %v higher_prio_send_advert %v garp_lower_prio %d/%v",
			in.State, in.Auth, in.PreemptDelay, in.Accept, in.LowerPrioNoAdv, in.HigherPrioSend, in.Garp.LowerPrioRepeat, in.Garp.LowerPrioDelay)
	}
	for _, w := range []string{"state MASTER must match", "does not support authentication", "preempt_delay is incompatible",
		"requires lower_prio_no_advert", "requires higher_prio_send_advert to be clear", "garp_lower_prio_repeat"} {
		if !hasMsg(msgs, w) {
			t.Errorf("no warning %q in %q", w, msgs)
		}
	}

	// The address owner accepts by default; unicast peers and an empty
	// address list are refused.
	cfg, msgs = parseMsgs(t, `vrrp_instance VI_1 {
    strict_mode
    interface eth0
    virtual_router_id 1
    priority 255
    virtual_ipaddress {
        10.0.0.1/24
    }
}
vrrp_instance VI_2 {
    strict_mode
    interface eth0
    virtual_router_id 2
    unicast_peer {
        10.0.0.9
    }
}
`)
	if !cfg.Instances[0].Accept || cfg.Instances[0].State != StateMaster {
		t.Errorf("strict owner: accept %v state %v, want true MASTER", cfg.Instances[0].Accept, cfg.Instances[0].State)
	}
	for _, e := range []string{"unicast peers are not supported in strict mode", "strict mode needs at least one virtual_ipaddress"} {
		if !hasMsg(msgs, e) {
			t.Errorf("no error %q in %q", e, msgs)
		}
	}

	// IPv6: VRRPv3 only, and the first address link-local.
	cfg, msgs = parseMsgs(t, `vrrp_instance VI_6 {
    strict_mode
    version 2
    interface eth0
    virtual_router_id 6
    virtual_ipaddress {
        fd00::1/64
    }
}
`)
	if cfg.Instances[0].Version != 3 || !hasMsg(msgs, "IPv6 cannot use VRRP version 2") || !hasMsg(msgs, "must be link-local") {
		t.Errorf("strict IPv6 instance: version %d, diagnostics %q", cfg.Instances[0].Version, msgs)
	}

	// Without strict mode nothing changes.
	cfg, _ = parseMsgs(t, `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    higher_prio_send_advert
    virtual_ipaddress {
        10.0.0.1/24
    }
}
`)
	if in := cfg.Instances[0]; !in.HigherPrioSend || in.LowerPrioNoAdv || !in.Accept || in.Garp.LowerPrioRepeat != 5 {
		t.Errorf("non-strict instance changed: %+v", in)
	}
}

const syncPair = `vrrp_script chk {
    script "/bin/true"
    weight 10
}
vrrp_track_file f {
    file /tmp/f
}
vrrp_sync_group G {
    group {
        VI_1
        VI_2
    }
    GROUP_EXTRA
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    track_interface {
        eth1 weight -20
    }
    track_script {
        chk
    }
    track_file {
        f
    }
    virtual_ipaddress {
        10.0.0.1/24
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress {
        10.0.0.2/24
    }
}
`

// The trackers of a sync group member lose their weights unless the
// group has sync_group_tracking_weight (or the deprecated global_tracking):
// keepalived's vrrp_complete_instance.
func TestSyncGroupTrackingWeight(t *testing.T) {
	for _, tc := range []struct {
		extra    string
		weighted bool
		warning  string
	}{
		{"", false, "ignoring track_script chk, which has a weight"},
		{"sync_group_tracking_weight", true, ""},
		{"global_tracking", true, "global_tracking is deprecated"},
	} {
		t.Run("with "+tc.extra, func(t *testing.T) {
			cfg, msgs := parseMsgs(t, strings.Replace(syncPair, "GROUP_EXTRA", tc.extra, 1))
			in := cfg.Instances[0]
			if tc.weighted {
				if len(in.TrackScripts) != 1 || in.TrackScripts[0].Weight != 10 || in.TrackInterfaces[0].Weight != -20 || in.TrackFiles[0].Weight != 1 {
					t.Errorf("weights changed: %+v %+v %+v", in.TrackScripts, in.TrackInterfaces, in.TrackFiles)
				}
			} else if len(in.TrackScripts) != 0 || len(in.TrackInterfaces) != 1 || in.TrackInterfaces[0].Weight != 0 ||
				len(in.TrackFiles) != 1 || in.TrackFiles[0].Weight != 0 {
				t.Errorf("member trackers: scripts %+v, interfaces %+v, files %+v; want no script, eth1 and f fault-only", in.TrackScripts, in.TrackInterfaces, in.TrackFiles)
			}
			if tc.warning != "" && !hasMsg(msgs, tc.warning) {
				t.Errorf("no warning %q in %q", tc.warning, msgs)
			}
		})
	}
}

// notify_priority_changes: the instance's own setting, else its sync
// group's, else the global one.
func TestNotifyPriorityChangesDefaults(t *testing.T) {
	for _, tc := range []struct {
		global, group, inst string
		want                [2]bool
	}{
		{"", "", "", [2]bool{false, false}},
		{"vrrp_notify_priority_changes", "", "", [2]bool{true, true}},
		{"vrrp_notify_priority_changes", "notify_priority_changes off", "", [2]bool{false, true}},
		{"", "notify_priority_changes", "notify_priority_changes off", [2]bool{false, false}},
		{"", "", "notify_priority_changes", [2]bool{true, false}},
	} {
		src := "global_defs {\n" + tc.global + "\n}\n" + strings.Replace(strings.Replace(syncPair, "GROUP_EXTRA", tc.group, 1),
			"vrrp_instance VI_1 {\n", "vrrp_instance VI_1 {\n"+tc.inst+"\n", 1)
		// VI_2 leaves the group: it follows the global setting alone.
		src = strings.Replace(src, "        VI_2\n", "", 1)
		cfg, msgs := parseMsgs(t, src)
		got := [2]bool{cfg.Instances[0].NotifyPrioChgs, cfg.Instances[1].NotifyPrioChgs}
		if got != tc.want {
			t.Errorf("global %q group %q instance %q: VI_1, VI_2 = %v, want %v (%q)", tc.global, tc.group, tc.inst, got, tc.want, msgs)
		}
	}
}

// checker_log_all_failures is the checkers' log_all_failures default.
func TestCheckerLogAllDefault(t *testing.T) {
	for _, global := range []bool{false, true} {
		src := "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    TCP_CHECK {\n    }\n  }\n}\n"
		if global {
			src = "global_defs {\n  checker_log_all_failures\n}\n" + src
		}
		cfg, msgs := parseMsgs(t, src)
		if got := cfg.VirtualServers[0].RealServers[0].Checkers[0].LogAll; got != global {
			t.Errorf("checker_log_all_failures %v: the checker's log_all_failures is %v (%q)", global, got, msgs)
		}
	}
}

// handover_drain is read as a duration in 0..60 s, noted as a Tandem
// extension at its position, left nil when absent, and printed by fmt.
func TestHandoverDrain(t *testing.T) {
	inst := func(line string) string {
		return "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n" + line + "\n    virtual_ipaddress {\n        10.0.0.1/24\n    }\n}\n"
	}
	cfg, diags := Parse("t.conf", []byte(inst("    handover_drain 2.5")), Options{})
	if diags.HasErrors() || cfg.Instances[0].HandoverDrain == nil || *cfg.Instances[0].HandoverDrain != Duration(2500*time.Millisecond) {
		t.Fatalf("handover_drain 2.5: %v, %v", cfg.Instances[0].HandoverDrain, diags)
	}
	if len(diags) != 1 || diags[0].Pos.Line != 4 || diags[0].Pos.Col != 5 || diags[0].Msg != "handover_drain is a Tandem extension: keepalived does not accept it" {
		t.Errorf("diagnostics %v, want the extension noted at 4:5", diags)
	}
	var out strings.Builder
	if err := Format(&out, cfg); err != nil || !strings.Contains(out.String(), "handover_drain 2.5\n") {
		t.Errorf("fmt lost handover_drain (%v):\n%s", err, out.String())
	}
	if cfg, msgs := parseMsgs(t, inst("")); cfg.Instances[0].HandoverDrain != nil || len(msgs) != 0 {
		t.Errorf("absent: %v, %q", cfg.Instances[0].HandoverDrain, msgs)
	}
	if _, diags := Parse("t.conf", []byte(inst("    handover_drain 61")), Options{}); !diags.HasErrors() {
		t.Error("handover_drain 61 accepted; the range is 0..60 s")
	}
}

// higher_prio_send_advert is on by default in Tandem (keepalived: off),
// the file can turn it off globally or per instance, and strict mode
// turns it off without a warning when the file did not ask for it.
func TestHigherPrioSendAdvertDefault(t *testing.T) {
	const vi = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n%s virtual_ipaddress {\n  10.0.0.1/24\n }\n}\n"
	inVI := func(s string) string { return strings.Replace(vi, "%s", s, 1) }
	tests := []struct {
		name, src string
		want      bool
	}{
		{"default", inVI(""), true},
		{"global off", "global_defs {\n vrrp_higher_prio_send_advert off\n}\n" + inVI(""), false},
		{"instance off", inVI(" higher_prio_send_advert false\n"), false},
		{"instance on over global off", "global_defs {\n vrrp_higher_prio_send_advert off\n}\n" + inVI(" higher_prio_send_advert\n"), true},
		{"strict mode", inVI(" strict_mode\n"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, msgs := parseMsgs(t, tt.src)
			if got := cfg.Instances[0].HigherPrioSend; got != tt.want {
				t.Errorf("higher_prio_send_advert %v, want %v", got, tt.want)
			}
			if hasMsg(msgs, "higher_prio_send_advert") {
				t.Errorf("diagnostics %q", msgs)
			}
		})
	}
}
