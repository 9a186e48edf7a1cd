package config

import (
	"strings"
	"testing"
)

// TestTrackProcessMatching checks keepalived's param_match and quorum_max
// rules (vrrp_parser.c vrrp_tprocess_match_handler and
// vrrp_tprocess_quorum_max_handler) and that Format keeps them.
func TestTrackProcessMatching(t *testing.T) {
	for _, c := range []struct {
		name, body        string
		match             ParamMatch
		full              bool
		quorum, quorumMax int
	}{
		{"defaults", "process nginx", ParamMatchUnset, false, 1, 0},
		{"bare param_match is exact", "process nginx -g daemon\n    param_match", ParamExact, true, 1, 0},
		{"initial", "process nginx -g\n    param_match initial", ParamInitial, true, 1, 0},
		{"quorum_max 0: must not run", "process nginx\n    quorum_max 0", ParamMatchUnset, false, 0, 0},
		{"quorum range", "process nginx\n    quorum 2\n    quorum_max 4", ParamMatchUnset, false, 2, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "vrrp_track_process tp {\n    " + c.body + "\n}\n"
			cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %v", diags)
			}
			tp := cfg.TrackProcesses[0]
			if tp.ParamMatch != c.match || tp.FullCommand != c.full || tp.Quorum != c.quorum || tp.QuorumMax != c.quorumMax {
				t.Errorf("got match %q full %t quorum %d..%d, want %q %t %d..%d", tp.ParamMatch, tp.FullCommand, tp.Quorum, tp.QuorumMax, c.match, c.full, c.quorum, c.quorumMax)
			}
			var b strings.Builder
			if err := Format(&b, cfg); err != nil {
				t.Fatal(err)
			}
			again, diags := Parse("f.conf", []byte(b.String()), Options{ConfigID: "x"})
			if len(diags) > 0 {
				t.Fatalf("formatted text: %v\n%s", diags, b.String())
			}
			if got := *again.TrackProcesses[0]; got.ParamMatch != tp.ParamMatch || got.Quorum != tp.Quorum || got.QuorumMax != tp.QuorumMax || got.FullCommand != tp.FullCommand {
				t.Errorf("round trip changed %+v into %+v", *tp, got)
			}
		})
	}
}

// TestNotifyScriptUser: a user after a quoted notify command is named in a
// warning, and the command keeps its words.
func TestNotifyScriptUser(t *testing.T) {
	src := `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    notify_master "/usr/local/bin/master.sh arg" nobody
    virtual_ipaddress {
        10.0.0.1
    }
}
`
	cfg, diags := Parse("t.conf", []byte(src), Options{ConfigID: "x"})
	if diags.HasErrors() || len(diags) != 1 || !strings.Contains(diags[0].Msg, `user "nobody" is not supported`) {
		t.Fatalf("diagnostics %v, want one warning naming the user", diags)
	}
	if got := strings.Join(cfg.Instances[0].Notify.Master, "|"); got != "/usr/local/bin/master.sh|arg" {
		t.Errorf("command %q", got)
	}
}
