package api

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"
)

// The Grafana dashboard and the Prometheus rules shipped in packaging/
// query Tandem's metrics by name; these tests hold them to the names
// /metrics really serves, and run promtool on the rules.

const (
	dashboardFile = "../../packaging/grafana/tandem.json"
	rulesFile     = "../../packaging/prometheus/tandem-rules.yml"
	rulesTestFile = "../../packaging/prometheus/tandem-rules.test.yml"
)

// TestPrometheusRules loads the rules with promtool (Debian's prometheus
// package) and runs their unit tests, which feed series and expect the
// alerts to fire or stay silent.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (Debian package prometheus): the rules are not loaded or unit-tested")
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	checkDashboardPromQL(t, promtool)
}

// grafanaVariables are the dashboard's variables and what promtool sees
// in their place.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$instance", ".*")

// checkDashboardPromQL has Prometheus's parser read every dashboard query
// (as recording rules for promtool check rules), and evaluates the VRRP
// state panel's, which turns the state label into a value for the state
// timeline's value mappings (2 is MASTER), over a director in MASTER.
func checkDashboardPromQL(t *testing.T, promtool string) {
	t.Helper()
	_, exprs := readDashboard(t)
	var recs []rule
	var state string
	for i, e := range exprs {
		e = grafanaVariables.Replace(e)
		recs = append(recs, rule{fmt.Sprintf("dashboard:query_%d", i), e})
		if strings.Contains(e, `state="MASTER"} * 2`) {
			state = e
		}
	}
	if state == "" {
		t.Fatal("the dashboard has no VRRP state query (MASTER as 2)")
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "dashboard-rules.yml")
	writeYAML(t, rules, map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recs}}})
	series := func(state string, v int) map[string]string {
		return map[string]string{
			"series": fmt.Sprintf(`tandem_vrrp_state{job="tandem",instance="lb1:9100",exported_instance="VI_1",vrid="51",vip="192.0.2.100",state=%q}`, state),
			"values": fmt.Sprintf("%dx4", v)}
	}
	tests := filepath.Join(dir, "dashboard-test.yml")
	writeYAML(t, tests, map[string]any{
		"rule_files": []string{rules},
		"tests": []any{map[string]any{
			"interval":     "15s",
			"input_series": []any{series("INIT", 0), series("BACKUP", 0), series("MASTER", 1), series("FAULT", 0), series("STOP", 0)},
			"promql_expr_test": []any{map[string]any{"expr": state, "eval_time": "1m", "exp_samples": []any{map[string]any{
				"labels": `{instance="lb1:9100",exported_instance="VI_1",vrid="51",vip="192.0.2.100"}`, "value": 2}}}},
		}},
	})
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", tests}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s (the dashboard's queries): %v\n%s", args[0], err, out)
		}
	}
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPackagedQueriesUseExportedMetrics: every metric that the dashboard's
// panels and variables, the rules' expressions and the rules' unit tests
// name is one that /metrics serves (or a rule records).
func TestPackagedQueriesUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	rules := readRules(t)
	known := map[string]bool{}
	for n := range exported {
		known[n] = true
	}
	var exprs []string
	for _, r := range rules {
		if r.Record != "" {
			known[r.Record] = true
		}
		exprs = append(exprs, r.Expr)
	}
	b, dash := readDashboard(t)
	exprs = append(exprs, dash...)
	series := ruleTestSeries(t)
	checkSeriesLabels(t, series, exported)
	exprs = append(exprs, series...)
	used := map[string]bool{}
	for _, e := range exprs {
		if err := checkMetricNames(e, known); err != nil {
			t.Error(err)
		}
		names, _ := promqlMetricNames(e)
		for _, n := range names {
			used[n] = true
		}
	}
	// The panels the issue asks for each read their metric.
	for _, n := range []string{"tandem_vrrp_state", "tandem_vrrp_transitions_total", "tandem_real_server_healthy",
		"tandem_check_latency_seconds_bucket", "tandem_dataplane_packets_total", "tandem_dataplane_bytes_total",
		"tandem_virtual_server_quorum_up", "tandem_vrrp_adverts_dropped_total"} {
		if !used[n] {
			t.Errorf("no dashboard query or rule reads %s", n)
		}
	}

	// The check itself catches a misspelled metric in a panel.
	bad := strings.Replace(string(b), "tandem_real_server_healthy{", "tandem_realserver_healthy{", 1)
	if bad == string(b) {
		t.Fatal("the dashboard has no tandem_real_server_healthy selector to misspell")
	}
	dash, err := dashboardExprs([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, e := range dash {
		if err := checkMetricNames(e, known); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "tandem_realserver_healthy") {
		t.Errorf("a misspelled metric in the dashboard gave %q, want one error naming tandem_realserver_healthy", errs)
	}
}

var (
	// sampleLine is a sample in the text format: name, then labels.
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?`)
	// quoted is a label value, with its escapes.
	quoted    = regexp.MustCompile(`"(?:\\.|[^"\\])*"`)
	labelName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*=~?`)
)

// seriesLabels splits name{label="value",...} into the name and the label
// names.
func seriesLabels(series string) (string, []string) {
	m := sampleLine.FindStringSubmatch(strings.TrimSpace(series))
	if m == nil {
		return "", nil
	}
	var labels []string
	for _, l := range labelName.FindAllStringSubmatch(quoted.ReplaceAllString(m[2], `""`), -1) {
		labels = append(labels, l[1])
	}
	return m[1], labels
}

// exportedMetrics scrapes a handler over the test status (every kind of
// series present: instances, virtual servers, checkers that ran, a live
// table) and returns each series name, a histogram's _bucket, _sum and
// _count included, with its label names.
func exportedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	srv := newTestServer(t, testSource())
	body, _ := httpGet(t, srv.URL+"/metrics")
	out := map[string]map[string]bool{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, labels := seriesLabels(line)
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range labels {
			out[name][l] = true
		}
	}
	for _, n := range []string{"tandem_check_latency_seconds_bucket", "tandem_dataplane_bytes_total", "tandem_vrrp_state"} {
		if out[n] == nil {
			t.Fatalf("the test status does not export %s: %v", n, out)
		}
	}
	return out
}

// checkSeriesLabels: the series the rules' unit tests feed carry the
// labels Prometheus stores Tandem's with: the metric's own, job and
// instance (the target), and exported_instance for the metric's own
// instance label, which the target's renames.
func checkSeriesLabels(t *testing.T, series []string, exported map[string]map[string]bool) {
	t.Helper()
	for _, s := range series {
		name, labels := seriesLabels(s)
		own := exported[name]
		for _, l := range labels {
			ok := l == "job" || l == "instance" || own[l] || l == "exported_instance" && own["instance"]
			if !ok {
				t.Errorf("%s: %s has no label %s", filepath.Base(rulesTestFile), name, l)
			}
		}
	}
}

// rule is a recording or alerting rule, as far as the tests read it.
type rule struct {
	Record string `yaml:"record,omitempty"`
	Expr   string `yaml:"expr"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, rulesFile, &f)
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return out
}

// ruleTestSeries returns the series selectors the rules' unit tests feed,
// which must be Tandem's too, or the tests prove nothing about real data.
func ruleTestSeries(t *testing.T) []string {
	t.Helper()
	var f struct {
		Tests []struct {
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
		} `yaml:"tests"`
	}
	readYAML(t, rulesTestFile, &f)
	var out []string
	for _, tc := range f.Tests {
		for _, s := range tc.InputSeries {
			out = append(out, s.Series)
		}
	}
	return out
}

// readDashboard returns the dashboard and its queries.
func readDashboard(t *testing.T) ([]byte, []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	exprs, err := dashboardExprs(b)
	if err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: %d queries found, want the panels' and the variables' (10 or more)", dashboardFile, len(exprs))
	}
	return b, exprs
}

// grafanaLabelValues is a variable's label_values(selector, label) query:
// only the selector is PromQL.
var grafanaLabelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$`)

// dashboardExprs returns the PromQL of every target (an "expr" anywhere
// in the dashboard, rows' nested panels included) and of every query
// variable.
func dashboardExprs(b []byte) ([]string, error) {
	var d struct {
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	var out []string
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				return nil, fmt.Errorf("variable query %s: %w", v.Query, err)
			}
		}
		m := grafanaLabelValues.FindStringSubmatch(q.Query)
		if m == nil {
			return nil, fmt.Errorf("variable query %q: want label_values(selector, label)", q.Query)
		}
		out = append(out, m[1])
	}
	var all any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, s)
				} else {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
	return out, nil
}

// checkMetricNames says which metrics of expr are not known.
func checkMetricNames(expr string, known map[string]bool) error {
	names, err := promqlMetricNames(expr)
	if err != nil {
		return fmt.Errorf("%q: %w", expr, err)
	}
	for _, n := range names {
		if !known[n] {
			return fmt.Errorf("%q reads %s, which Tandem does not export", expr, n)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("%q reads no metric", expr)
	}
	return nil
}
