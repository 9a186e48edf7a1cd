package config

import (
	"strings"
	"testing"
)

// TestURLRegex: regex and regex_no_match are read; a pattern Go's RE2
// cannot compile is an error at its position.
func TestURLRegex(t *testing.T) {
	conf := func(re string) string {
		return `virtual_server 10.0.0.1 80 {
    lb_algo rr
    protocol TCP
    real_server 10.0.0.2 80 {
        HTTP_GET {
            url {
                path /
                regex "` + re + `"
                regex_no_match
            }
        }
    }
}
`
	}
	cfg, diags := Parse("t.conf", []byte(conf(`ok\s+[0-9]+`)), Options{ConfigID: "x"})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	u := cfg.VirtualServers[0].RealServers[0].Checkers[0].HTTP.URLs[0]
	if u.Regex == nil || u.Regex.String() != `ok\s+[0-9]+` || !u.RegexNoMatch {
		t.Errorf("url: regex %q, no match %t", u.Regex, u.RegexNoMatch)
	}
	_, diags = Parse("t.conf", []byte(conf(`(?<=x)y`)), Options{ConfigID: "x"})
	if !diags.HasErrors() || diags[0].Pos.Line != 8 || !strings.Contains(diags[0].Msg, "not a pattern Tandem can use") {
		t.Errorf("a PCRE-only pattern: %v", diags)
	}
}
