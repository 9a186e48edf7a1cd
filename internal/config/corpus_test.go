package config

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config/syntax"
)

const syntaxError = syntax.Error

// expectedWarnings are the only warnings the corpus may give: deprecated
// forms keepalived still reads, keywords Tandem names as unsupported, and
// keepalived's own fix-ups. A new kind of warning on the corpus fails the
// test, so that it is looked at.
var expectedWarnings = []*regexp.Regexp{
	regexp.MustCompile(`^nb_get_retry is deprecated; read as retry \d+$`),
	regexp.MustCompile(`^route: "(gw|or)" is deprecated; .* \(keepalived 2.2.7 reports it as a configuration error\)$`),
	regexp.MustCompile(`^persistence_timeout 0 is not valid in keepalived; read as no persistence`),
	regexp.MustCompile(`^authentication: auth_pass ".*" is longer than 8 bytes; truncated to ".{8}"`),
	regexp.MustCompile(`^SMTP_CHECK: host \{ \} blocks are deprecated`),
	regexp.MustCompile(`^vrrp_sync_group \S+: instance \S+ listed outside group \{ \} \(keepalived 1\.x syntax\)`),
	regexp.MustCompile(`: incomplete address "[0-9.]+" read as [0-9.]+$`),
	regexp.MustCompile(`: keyword "[^"]+" is not supported by Tandem \(.*\); ignored$`),
	regexp.MustCompile(`^virtual_server fwmark \d+: protocol is ignored for fwmark services$`),
	regexp.MustCompile(`^vrrp_instance \S+: lvs_sync_daemon_interface is deprecated; read as global_defs`),
	// keepalived's strict-mode fix-ups (vrrp_complete_instance).
	regexp.MustCompile(`^vrrp_instance \S+: (strict mode|.* in strict mode|.* strict mode;)`),
}

// keepalivedRefuses are corpus files that keepalived 2.2.7 itself refuses
// (`keepalived -t -f FILE` exits 5), with the errors Tandem must give for
// the same lines: keepalived's sample sets vrrp_garp_interval and
// vrrp_gna_interval to 0, below their range of 0.000001..4294.967295 s.
var keepalivedRefuses = map[string][]string{
	"keepalived.conf.sample.in": {
		`15:23: error: vrrp_garp_interval: "0" is not a number of seconds in 0.000001..4294.967295`,
		`16:22: error: vrrp_gna_interval: "0" is not a number of seconds in 0.000001..4294.967295`,
	},
}

func TestCorpus(t *testing.T) {
	for _, f := range corpusFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			_, diags := Load(f.path, Options{ConfigID: f.configID})
			if want, ok := keepalivedRefuses[f.name]; ok {
				errs := errorsOf(diags)
				for i := range errs {
					errs[i] = errs[i][strings.LastIndex(errs[i], f.name)+len(f.name)+1:]
				}
				if diff := cmp.Diff(want, errs); diff != "" {
					t.Errorf("errors of a file keepalived refuses (-want +got):\n%s", diff)
				}
				return
			}
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
