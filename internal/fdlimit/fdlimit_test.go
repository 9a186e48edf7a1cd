package fdlimit

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRaise: as root, a hard limit of 1024 goes up to the
// kernel's ceiling (fs.nr_open), soft and hard.
func TestRaise(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: only root may raise the hard limit")
	}
	if !hasCapability(t, 24) { // CAP_SYS_RESOURCE, capabilities(7)
		t.Skip("root without CAP_SYS_RESOURCE (a container's bounding set): the hard limit cannot be raised here")
	}
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		t.Skip(err)
	}
	ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 1024, Max: 1024}); err != nil {
		t.Fatal(err)
	}
	before, after, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if before.Cur != 1024 || after.Cur != ceiling || after.Max != ceiling {
		t.Errorf("Raise: %d:%d -> %d:%d, want 1024:1024 -> fs.nr_open %d", before.Cur, before.Max, after.Cur, after.Max, ceiling)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != ceiling || now.Max != ceiling {
		t.Errorf("RLIMIT_NOFILE now %d:%d, want %d:%d", now.Cur, now.Max, ceiling, ceiling)
	}
}

// hasCapability reports whether capability number c is in this process's
// effective set.
func hasCapability(t *testing.T, c uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return eff&(1<<c) != 0
		}
	}
	t.Skip("no CapEff in /proc/self/status")
	return false
}
