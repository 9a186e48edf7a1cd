package xdp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGeneratedUpToDate regenerates the programs and their bindings, with
// the commands of gen.go's generate directives, into a scratch directory,
// and fails if they differ from what is committed: a change to a C
// source under bpf/ must come with its regenerated object.
func TestGeneratedUpToDate(t *testing.T) {
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian packages clang, llvm): cannot check the committed XDP objects", tool)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("bpf/bpf_helpers.h not found (Debian package libbpf-dev): cannot check the committed XDP objects")
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var stems []string
	out := t.TempDir()
	for line := range strings.Lines(string(src)) {
		rest, ok := strings.CutPrefix(line, "//go:generate ")
		if !ok {
			continue
		}
		args := strings.Fields(rest)
		// go run <bpf2go> [flags] stem source -- cflags
		i := slices.Index(args, "--")
		if len(args) < 4 || args[0] != "go" || args[1] != "run" || i < 2 {
			t.Fatalf("gen.go: go:generate line %q: want go run bpf2go ... stem source -- cflags", args)
		}
		stems = append(stems, args[i-2])
		args = slices.Insert(args, 3, "-output-dir", out)
		cmd := exec.Command(args[0], args[1:]...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
	}
	if !slices.Equal(stems, []string{"lb", "decap"}) {
		t.Fatalf("gen.go generates %v, want lb and decap", stems)
	}
	for _, stem := range stems {
		for _, name := range []string{stem + "_bpfel.go", stem + "_bpfel.o"} {
			got, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			have, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, have) {
				t.Errorf("%s differs from what its C source compiles to: run go generate ./internal/lvs/xdp and commit the result", name)
			}
		}
	}
}
