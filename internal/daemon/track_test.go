package daemon

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"tandem/internal/config"
)

// TestUntracked: a reload that stops an instance tracking an object (its
// own track_script or its sync group's) names that contribution, so that
// the instance, which runs on in place, drops it; objects still tracked
// and instances that never tracked them are not named.
func TestUntracked(t *testing.T) {
	const base = `vrrp_script chk {
    script "/bin/true"
    weight 10
}
vrrp_script grp {
    script "/bin/true"
}
vrrp_sync_group G {
    group {
        VI_1
    }
    track_script {
        grp
    }
}
vrrp_instance VI_1 {
    interface eth0
    dont_track_primary
    virtual_router_id 1
    priority 100
    virtual_ipaddress {
        10.0.0.1/24
    }
    track_script {
        chk
    }
}
vrrp_instance VI_2 {
    interface eth0
    dont_track_primary
    virtual_router_id 2
    priority 100
    virtual_ipaddress {
        10.0.0.2/24
    }
    track_script {
        chk
    }
}
`
	parse := func(src string) *config.Config {
		cfg, diags := config.Parse("t.conf", []byte(src), config.Options{ConfigID: "t"})
		if diags.HasErrors() {
			t.Fatalf("config: %v", diags)
		}
		return cfg
	}
	old := parse(base)
	for _, tc := range []struct {
		name string
		edit func(string) string
		want map[string][]string
	}{
		{"nothing", func(s string) string { return s }, nil},
		{"weight only", func(s string) string { return strings.Replace(s, "weight 10", "weight 20", 1) }, nil},
		{"one instance's track_script", func(s string) string {
			return strings.Replace(s, "    track_script {\n        chk\n    }\n}\nvrrp_instance VI_2", "}\nvrrp_instance VI_2", 1)
		}, map[string][]string{"VI_1": {"vrrp_script chk"}}},
		{"the group's", func(s string) string { return strings.Replace(s, "    track_script {\n        grp\n    }\n", "", 1) },
			map[string][]string{"VI_1": {"vrrp_script grp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.edit(base)
			got := untracked(old, parse(src))
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("untracked (-want +got):\n%s", d)
			}
		})
	}
}
