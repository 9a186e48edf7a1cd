package lab

import (
	"testing"

	"tandem/internal/config"
)

// ParseConfig parses src as a configuration file named t.conf (config id
// "t") and fails tb on any error: the tests of every package that reads
// the model build theirs with it.
func ParseConfig(tb testing.TB, src string) *config.Config {
	tb.Helper()
	cfg, diags := config.Parse("t.conf", []byte(src), config.Options{ConfigID: "t"})
	if diags.HasErrors() {
		tb.Fatalf("config: %v", diags)
	}
	return cfg
}
