package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusDir is the shared test corpus, outside the repository (the
// keepalived samples are GPL test data and are never copied in).
const corpusDir = "../../../shared/corpus"

// corpusFile is one configuration of the shared corpus.
type corpusFile struct {
	name     string // base name
	path     string
	configID string
	bad      bool // a bad-*.conf that must be rejected
}

// corpusFiles lists every seed configuration and keepalived sample, or
// skips the test when the shared corpus is not there.
func corpusFiles(t testing.TB) []corpusFile {
	t.Helper()
	seeds, err := filepath.Glob(filepath.Join(corpusDir, "seed-configs", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	samples, err := filepath.Glob(filepath.Join(corpusDir, "keepalived-samples", "keepalived.conf*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(seeds) == 0 || len(samples) == 0 {
		t.Skipf("shared corpus not found at %s (seed-configs/ and keepalived-samples/); skipping corpus tests", corpusDir)
	}
	sort.Strings(seeds)
	sort.Strings(samples)
	var out []corpusFile
	for _, p := range append(seeds, samples...) {
		base := filepath.Base(p)
		id := "x"
		if base == "keepalived.conf.conditional_conf" {
			id = "high"
		}
		out = append(out, corpusFile{name: base, path: p, configID: id, bad: strings.HasPrefix(base, "bad-")})
	}
	return out
}

// goodCorpus is corpusFiles without the bad-*.conf files and those
// keepalived itself refuses.
func goodCorpus(t testing.TB) []corpusFile {
	var out []corpusFile
	for _, f := range corpusFiles(t) {
		if _, refused := keepalivedRefuses[f.name]; !f.bad && !refused {
			out = append(out, f)
		}
	}
	return out
}

// fataler is what dump and roundTrip need of testing.TB and rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// dump is the model as check --dump prints it (positions excluded).
func dump(t fataler, cfg *Config) string {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errorsOf returns the error diagnostics as strings.
func errorsOf(ds Diagnostics) []string {
	var out []string
	for _, d := range ds {
		if d.Severity == syntaxError {
			out = append(out, d.String())
		}
	}
	return out
}

// globCorpus lists the corpus files without skipping (fuzz seeds are
// optional).
func globCorpus() ([]string, error) {
	a, err := filepath.Glob(filepath.Join(corpusDir, "seed-configs", "*.conf"))
	if err != nil {
		return nil, err
	}
	b, err := filepath.Glob(filepath.Join(corpusDir, "keepalived-samples", "keepalived.conf*"))
	return append(a, b...), err
}
