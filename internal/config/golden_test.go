package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current parser")

// TestGolden compares the --dump JSON of every seed configuration with
// testdata/golden/<name>.json. Regenerate with
//
//	go test ./internal/config -run Golden -update
//
// and read the diff: every value in a golden file was checked by eye
// against keepalived's defaults.
func TestGolden(t *testing.T) {
	n := 0
	for _, f := range goodCorpus(t) {
		if !strings.HasPrefix(f.name, "seed") {
			continue
		}
		n++
		t.Run(f.name, func(t *testing.T) {
			cfg, diags := Load(f.path, Options{ConfigID: f.configID})
			if diags.HasErrors() {
				t.Fatalf("errors:\n%s", strings.Join(errorsOf(diags), "\n"))
			}
			got := dump(t, cfg) + "\n"
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(f.name, ".conf")+".json")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/config -run Golden -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s: dump differs from %s (-want +got):\n%s", f.name, golden, diff)
			}
		})
	}
	if n == 0 {
		t.Fatal("no seed configurations found")
	}
}
