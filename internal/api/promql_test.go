package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// promqlMetricNames returns the metric names a PromQL expression selects,
// in order, for TestPackagedQueriesUseExportedMetrics. It is a tokenizer,
// not a parser: Prometheus's own parser (github.com/prometheus/prometheus
// /promql/parser) lives in a module whose go.mod requires the whole
// server's dependencies (cloud SDKs, Kubernetes clients), too much for one
// test. What it must get right is what is a metric: identifiers that are
// not keywords, aggregation operators or functions (those followed by a
// parenthesis, which must be PromQL's), outside strings, label matchers
// ({...}), ranges ([...]) and the label lists of by/without/on/ignoring/
// group_left/group_right. Grafana variables ($x, ${x}) are skipped.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	i, depth := 0, 0 // depth counts open parentheses
	// skipSpace returns the index of the next non-space byte.
	skipSpace := func(j int) int {
		for j < len(s) && strings.IndexByte(" \t\r\n", s[j]) >= 0 {
			j++
		}
		return j
	}
	// skipString returns the index after the string literal at j.
	skipString := func(j int) (int, error) {
		q := s[j]
		for j++; j < len(s); j++ {
			switch {
			case s[j] == '\\' && q != '`':
				j++
			case s[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", j)
	}
	// skipGroup returns the index after the bracket that closes the one at
	// j, and the text inside.
	skipGroup := func(j int) (int, string, error) {
		open, depth := j, 0
		for j < len(s) {
			switch s[j] {
			case '"', '\'', '`':
				var err error
				if j, err = skipString(j); err != nil {
					return 0, "", err
				}
				continue
			case '(', '{', '[':
				depth++
			case ')', '}', ']':
				depth--
				if depth == 0 {
					return j + 1, s[open+1 : j], nil
				}
			}
			j++
		}
		return 0, "", fmt.Errorf("unclosed %c at %d", s[open], open)
	}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
	}
	for i = skipSpace(i); i < len(s); i = skipSpace(i) {
		c := s[i]
		switch {
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{' || c == '[':
			j, inner, err := skipGroup(i)
			if err != nil {
				return nil, err
			}
			if c == '{' && strings.Contains(inner, "__name__") {
				return nil, fmt.Errorf("selects by __name__ at %d: name the metric", i)
			}
			i = j
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				j, _, err := skipGroup(i)
				if err != nil {
					return nil, err
				}
				i = j
			}
			for i < len(s) && isIdent(s[i], false) {
				i++
			}
		case '0' <= c && c <= '9' || c == '.' && i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '9':
			// Numbers, hex, exponents and durations (offset 5m).
			for i < len(s) && (isIdent(s[i], false) || s[i] == '.') && s[i] != ':' {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(s) && isIdent(s[j], false) {
				j++
			}
			word := s[i:j]
			next := skipSpace(j)
			paren := next < len(s) && s[next] == '('
			lower := strings.ToLower(word)
			switch {
			case promqlLabelListKeywords[lower]:
				if paren {
					k, _, err := skipGroup(next)
					if err != nil {
						return nil, err
					}
					j = k
				}
			case promqlKeywords[lower], promqlAggregations[word]:
			case paren:
				if !promqlFunctions[word] {
					return nil, fmt.Errorf("unknown function %s at %d", word, i)
				}
			default:
				names = append(names, word)
			}
			i = j
		case c == '(' || c == ')':
			if c == '(' {
				depth++
			} else if depth--; depth < 0 {
				return nil, fmt.Errorf("unopened ) at %d", i)
			}
			i++
		default:
			i++ // operators, commas, @
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed (", depth)
	}
	return names, nil
}

var (
	// promqlLabelListKeywords are followed by a list of label names.
	promqlLabelListKeywords = set("by", "without", "on", "ignoring", "group_left", "group_right")
	promqlKeywords          = set("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan")
	promqlAggregations      = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio")
	promqlFunctions = set("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
		"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time",
		"day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "end", "exp", "floor",
		"histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
		"histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
		"label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time",
		"minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
		"round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
		"start", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector",
		"year")
)

func set(words ...string) map[string]bool {
	m := map[string]bool{}
	for _, w := range words {
		m[w] = true
	}
	return m
}

func TestPromqlMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`tandem_vrrp_state{instance=~"$instance",state="MASTER"} == 1`, []string{"tandem_vrrp_state"}},
		{`sum by (job, vrid) (tandem_vrrp_state{state="MASTER"})`, []string{"tandem_vrrp_state"}},
		{`sum(rate(a_total[5m])) without (instance) / on (job) group_left (vrid, state) b`, []string{"a_total", "b"}},
		{`histogram_quantile(0.9, sum by (le) (rate(x_bucket{job=~"$job"}[$__rate_interval])))`, []string{"x_bucket"}},
		{`count_values("count", x) or vector(0) unless y offset 1h30m`, []string{"x", "y"}},
		{"label_replace(x, \"dst\", \"$1\", \"src\", `(.*)`) and bool 1e3 > 0x1F", []string{"x"}},
		{`job:x:rate5m{a="}{[(\"'"} > Inf # a comment naming z`, []string{"job:x:rate5m"}},
		{`x[5m:1m] @ start() + ${DS_PROMETHEUS} * .5`, []string{"x"}},
		{`topk by (a) (3, x) - ignoring (b) max without (c) (y)`, []string{"x", "y"}},
	} {
		got, err := promqlMetricNames(tc.expr)
		if err != nil {
			t.Errorf("promqlMetricNames(%q): %v", tc.expr, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("promqlMetricNames(%q) (-want +got):\n%s", tc.expr, diff)
		}
	}
	for _, expr := range []string{`rat(x[5m])`, `x{a="b}`, `sum(x`, `x)`, `{__name__="x"}`, `"unterminated`} {
		if got, err := promqlMetricNames(expr); err == nil {
			t.Errorf("promqlMetricNames(%q) = %v, want an error", expr, got)
		}
	}
}
