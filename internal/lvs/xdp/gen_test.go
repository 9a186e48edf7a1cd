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

// TestGeneratedUpToDate regenerates the program and its bindings, with
// the command of gen.go's generate directive, into a scratch directory,
// and fails if they differ from what is committed: a change to
// bpf/xdp_lb.c must come with its regenerated object.
func TestGeneratedUpToDate(t *testing.T) {
	for _, tool := range []string{"clang", "llvm-strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found (Debian packages clang, llvm): cannot check the committed XDP object", tool)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("bpf/bpf_helpers.h not found (Debian package libbpf-dev): cannot check the committed XDP object")
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for line := range strings.Lines(string(src)) {
		if rest, ok := strings.CutPrefix(line, "//go:generate "); ok {
			args = strings.Fields(rest)
		}
	}
	// go run <bpf2go> [flags] stem source -- cflags
	if len(args) < 4 || args[0] != "go" || args[1] != "run" {
		t.Fatalf("gen.go: go:generate line %q: want go run bpf2go ...", args)
	}
	out := t.TempDir()
	args = slices.Insert(args, 3, "-output-dir", out)
	cmd := exec.Command(args[0], args[1:]...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, b)
	}
	for _, name := range []string{"lb_bpfel.go", "lb_bpfel.o"} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, have) {
			t.Errorf("%s differs from what bpf/xdp_lb.c compiles to: run go generate ./internal/lvs/xdp and commit the result", name)
		}
	}
}
