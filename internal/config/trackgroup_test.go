package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config/syntax"
)

const trackGroupVIs = `vrrp_instance VI_1 {
 interface eth0
 virtual_router_id 1
 priority 100
 virtual_ipaddress {
  10.0.0.1/24
 }
}
vrrp_instance VI_2 {
 interface eth0
 virtual_router_id 2
 priority 100
 virtual_ipaddress {
  10.0.0.2/24
 }
}
`

func TestTrackGroupParse(t *testing.T) {
	src := trackGroupVIs + `track_group TG {
 group {
  VI_1
  VI_2
 }
}
static_ipaddress {
 192.0.2.1/24 dev eth1 track_group TG
}
static_routes {
 198.51.100.0/24 via 192.0.2.254 dev eth1 track_group TG
 203.0.113.0/24 via 192.0.2.254 no_track
}
static_rules {
 from 192.0.2.0/24 table 100 iif eth1 track_group TG
 to 192.0.2.9 table 101 no_track
}
`
	cfg, ds := Parse("c.conf", []byte(src), Options{})
	if len(ds) != 0 {
		t.Fatalf("diagnostics: %v", ds)
	}
	if len(cfg.TrackGroups) != 1 || cfg.TrackGroups[0].Name != "TG" || !cmp.Equal(cfg.TrackGroups[0].Members, []string{"VI_1", "VI_2"}) {
		t.Fatalf("track groups: %+v", cfg.TrackGroups)
	}
	if a := cfg.StaticAddresses[0]; a.TrackGroup != "TG" {
		t.Errorf("address track_group %q", a.TrackGroup)
	}
	if r := cfg.StaticRoutes; r[0].TrackGroup != "TG" || r[0].Dev != "eth1" || r[1].TrackGroup != "" || !r[1].NoTrack {
		t.Errorf("routes: %+v %+v", r[0], r[1])
	}
	if r := cfg.StaticRules; r[0].TrackGroup != "TG" || r[0].IIF != "eth1" || !r[1].NoTrack {
		t.Errorf("rules: %+v %+v", r[0], r[1])
	}
	// tandem fmt prints it, and reading the output back gives the same model.
	var b bytes.Buffer
	if err := Format(&b, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"track_group TG {", "dev eth1 track_group TG", "no_track"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("fmt output lacks %q:\n%s", want, b.String())
		}
	}
	back, ds := Parse("c.conf", b.Bytes(), Options{})
	if len(ds) != 0 {
		t.Fatalf("fmt output: diagnostics %v\n%s", ds, b.String())
	}
	if d := cmp.Diff(dump(t, cfg), dump(t, back)); d != "" {
		t.Errorf("fmt round trip (-in +out):\n%s", d)
	}
}

// TestTrackGroupChecks: what keepalived reports as configuration errors
// is an error at the word's position; what it logs and ignores is a
// warning.
func TestTrackGroupChecks(t *testing.T) {
	group := "track_group TG {\n group {\n  VI_1\n }\n}\n"
	for _, c := range []struct {
		name, src string
		sev       syntax.Severity
		line, col int
		words     []string
	}{
		{"unknown group", "static_ipaddress {\n 192.0.2.1/24 dev eth1 track_group NOPE\n}\n", Error, 2, 36, []string{"track_group NOPE not found"}},
		{"group defined below", "static_routes {\n 198.51.100.0/24 dev eth1 track_group TG\n}\n" + group, Error, 2, 39, []string{"track_group TG not found"}},
		{"given twice", group + "static_rules {\n from 192.0.2.0/24 table 1 track_group TG track_group TG\n}\n", Error, 7, 43, []string{"track_group given twice"}},
		{"no value", group + "static_ipaddress {\n 192.0.2.1/24 dev eth1 track_group\n}\n", Error, 7, 24, []string{"track_group needs a value"}},
		{"virtual route", strings.Replace(trackGroupVIs, " priority 100\n", " priority 100\n virtual_routes {\n  198.51.100.0/24 dev eth0 track_group TG\n }\n", 1), Error, 6, 28, []string{"only for static_routes"}},
		{"defined twice", group + group, Error, 6, 1, []string{"track_group TG is defined twice"}},
		{"unknown instance", "track_group TG {\n group {\n  VI_9\n }\n}\n", Warning, 1, 1, []string{"vrrp_instance VI_9 does not exist"}},
		{"no group", "track_group TG {\n}\n", Warning, 1, 1, []string{"no group"}},
		{"no_track too", group + "static_ipaddress {\n 192.0.2.1/24 dev eth1 no_track track_group TG\n}\n", Warning, 7, 2, []string{"both track_group and no_track"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := c.src
			if !strings.Contains(src, "vrrp_instance") {
				src += trackGroupVIs
			}
			_, ds := Parse("c.conf", []byte(src), Options{})
			for _, d := range ds {
				if d.Severity != c.sev || d.Pos.Line != c.line || d.Pos.Col != c.col {
					continue
				}
				ok := true
				for _, w := range c.words {
					ok = ok && strings.Contains(d.Msg, w)
				}
				if ok {
					return
				}
			}
			t.Errorf("no %s at %d:%d holding %q; diagnostics: %v", c.sev, c.line, c.col, c.words, ds)
		})
	}
}
