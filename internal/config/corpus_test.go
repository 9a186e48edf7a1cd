package config

import (
	"regexp"
	"strings"
	"testing"

	"tandem/internal/config/syntax"
)

const syntaxError = syntax.Error

// expectedWarnings are the only warnings the corpus may give: deprecated
// forms keepalived still reads, keywords Tandem names as unsupported, and
// keepalived's own fix-ups. A new kind of warning on the corpus fails the
// test, so that it is looked at.
var expectedWarnings = []*regexp.Regexp{
	regexp.MustCompile(`^nb_get_retry is deprecated; read as retry \d+$`),
	regexp.MustCompile(`^persistence_timeout 0 is not valid in keepalived; read as no persistence`),
	regexp.MustCompile(`^authentication: auth_pass ".*" is longer than 8 bytes; truncated to ".{8}"`),
	regexp.MustCompile(`^SMTP_CHECK: host \{ \} blocks are deprecated`),
	regexp.MustCompile(`^vrrp_sync_group \S+: instance \S+ listed outside group \{ \} \(keepalived 1\.x syntax\)`),
	regexp.MustCompile(`: incomplete address "[0-9.]+" read as [0-9.]+$`),
	regexp.MustCompile(`: keyword "[^"]+" is not supported by Tandem \(.*\); ignored$`),
	regexp.MustCompile(`^virtual_server fwmark \d+: protocol is ignored for fwmark services$`),
	// keepalived's strict-mode fix-ups (vrrp_complete_instance).
	regexp.MustCompile(`^vrrp_instance \S+: (strict mode|.* in strict mode|.* strict mode;)`),
}

func TestCorpus(t *testing.T) {
	for _, f := range corpusFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			_, diags := Load(f.path, Options{ConfigID: f.configID})
			if f.bad {
				checkBadSeed(t, f, diags)
				return
			}
			if errs := errorsOf(diags); len(errs) > 0 {
				t.Errorf("want no errors, got:\n%s", strings.Join(errs, "\n"))
			}
			for _, d := range diags {
				if d.Severity != syntax.Warning {
					continue
				}
				ok := false
				for _, re := range expectedWarnings {
					if re.MatchString(d.Msg) {
						ok = true
						break
					}
				}
				if !ok {
					t.Errorf("unexpected warning (add it to expectedWarnings only if it is right): %s", d)
				}
			}
		})
	}
}

func checkBadSeed(t *testing.T, f corpusFile, diags Diagnostics) {
	t.Helper()
	if f.name != "bad-seed002-mcast-typo.conf" {
		if !diags.HasErrors() {
			t.Errorf("%s: want an error, got none", f.name)
		}
		return
	}
	var errs []syntax.Diagnostic
	for _, d := range diags {
		if d.Severity == syntax.Error {
			errs = append(errs, d)
		}
	}
	if len(errs) != 1 {
		t.Fatalf("want exactly 1 error, got %d: %v", len(errs), errs)
	}
	e := errs[0]
	if e.Pos.Line != 13 || !strings.HasSuffix(e.Pos.File, f.name) {
		t.Errorf("error at %s, want %s line 13", e.Pos, f.name)
	}
	for _, want := range []string{"244.0.42.20", "not a multicast"} {
		if !strings.Contains(e.Msg, want) {
			t.Errorf("error %q does not contain %q", e.Msg, want)
		}
	}
}
