package check

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"tandem/internal/config"
)

func TestFile(t *testing.T) {
	tests := []struct {
		name      string
		content   *string // nil: no file
		weight    int
		reverse   bool
		ok        bool
		wantDelta *int
	}{
		{name: "weight 0, value 0", content: str("0\n"), ok: true},
		{name: "weight 0, value 1", content: str("1\n")},
		{name: "weight 0 reverse, value 0", content: str("0"), reverse: true},
		{name: "weight 0 reverse, value 3", content: str("3"), reverse: true, ok: true},
		{name: "weight 0, no file reads 0", ok: true},
		{name: "weight 0, garbage reads 0", content: str("up\n"), ok: true},
		{name: "weight 5 × 3", content: str(" 3 apples"), weight: 5, ok: true, wantDelta: ptr(15)},
		{name: "weight 5 × -2", content: str("-2"), weight: 5, ok: true, wantDelta: ptr(-10)},
		{name: "weight 2 reverse × 0x10", content: str("0x10"), weight: 2, reverse: true, ok: true, wantDelta: ptr(-32)},
		{name: "octal", content: str("010"), weight: 1, ok: true, wantDelta: ptr(8)},
		{name: "fault at the 32-bit minimum", content: str("-2147483648"), weight: 1},
		{name: "big product is clamped", content: str("2147483647"), weight: 254, ok: true, wantDelta: ptr(2147483647)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c := &config.Checker{Type: config.CheckFile, File: &config.FileCheck{TrackFile: "tf"}}
			ck, err := New(c, Target{}, Env{TrackFiles: []*config.TrackFile{{Name: "tf", File: path, Weight: tt.weight, Reverse: tt.reverse}}})
			if err != nil {
				t.Fatal(err)
			}
			r := ck.Check(context.Background())
			if r.OK != tt.ok {
				t.Fatalf("OK = %v (%v), want %v", r.OK, r.Err, tt.ok)
			}
			if deref(r.WeightDelta) != deref(tt.wantDelta) {
				t.Errorf("WeightDelta = %s, want %s", deref(r.WeightDelta), deref(tt.wantDelta))
			}
		})
	}
}

// TestFileOutOfRangeKeepsLast: a value outside 32 bits is ignored, as
// track_file.c process_track_file does, and the last value stands; the
// checker's own weight overrides the track file's.
func TestFileOutOfRangeKeepsLast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	c := &config.Checker{Type: config.CheckFile, File: &config.FileCheck{TrackFile: "tf", Weight: 3, WeightSet: true}}
	ck, err := New(c, Target{}, Env{TrackFiles: []*config.TrackFile{{Name: "tf", File: path, Weight: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		content string
		want    int
	}{{"4", 12}, {"99999999999", 12}, {"1", 3}} {
		os.WriteFile(path, []byte(step.content), 0o644)
		r := ck.Check(context.Background())
		if !r.OK || *r.WeightDelta != step.want {
			t.Errorf("after %q: %+v, want delta %d", step.content, r, step.want)
		}
	}
	if _, err := New(&config.Checker{Type: config.CheckFile, File: &config.FileCheck{TrackFile: "nope"}}, Target{}, Env{}); err == nil {
		t.Error("unknown track_file accepted")
	}
}

func str(s string) *string { return &s }
