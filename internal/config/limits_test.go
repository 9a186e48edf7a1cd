package config

import (
	"fmt"
	"strings"
	"testing"

	"tandem/internal/config/syntax"
)

// The parser's diagnostics are capped as the preprocessor's are: a file of
// errors gives up after the cap; warnings past it are not shown, and the
// configuration is still built whole.
func TestDiagnosticsCapped(t *testing.T) {
	const n = 3 * syntax.DefaultMaxDiagnostics / 2
	count := func(ds Diagnostics, sev syntax.Severity) int {
		c := 0
		for _, d := range ds {
			if d.Severity == sev {
				c++
			}
		}
		return c
	}

	_, diags := Parse("errors.conf", []byte(strings.Repeat("bogus_keyword\n", n)), Options{ConfigID: "t"})
	if got := count(diags, syntax.Error); got != syntax.DefaultMaxDiagnostics+1 {
		t.Errorf("%d errors for %d unknown keywords; want %d and one saying it gave up", got, n, syntax.DefaultMaxDiagnostics)
	}
	if last := diags[len(diags)-1].Msg; !strings.Contains(last, "giving up") {
		t.Errorf("last diagnostic %q, want one saying it gave up", last)
	}

	var b strings.Builder
	b.WriteString("virtual_server 192.0.2.1 80 {\n lb_kind NAT\n")
	for i := range n {
		fmt.Fprintf(&b, " real_server 10.0.%d.%d 80 {\n  TCP_CHECK {\n   nb_get_retry 3\n  }\n }\n", i>>8, i&255)
	}
	b.WriteString("}\n")
	cfg, diags := Parse("warnings.conf", []byte(b.String()), Options{ConfigID: "t"})
	if diags.HasErrors() {
		t.Fatalf("errors: %v", diags[:min(len(diags), 3)])
	}
	if got := count(diags, syntax.Warning); got != syntax.DefaultMaxDiagnostics+1 {
		t.Errorf("%d warnings for %d deprecated keywords; want %d and one saying the rest are not shown", got, n, syntax.DefaultMaxDiagnostics)
	}
	if got := len(cfg.VirtualServers[0].RealServers); got != n {
		t.Errorf("%d real servers built, want all %d", got, n)
	}
}
