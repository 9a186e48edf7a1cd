package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestRealserverUpDownStatus: `tandem realserver up` puts the VIPs on lo
// with labels and sets the ARP sysctls, status says ready, a second up
// changes nothing, and down restores the node as it was.
func TestRealserverUpDownStatus(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	state := t.TempDir()
	run := func(args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := l.Command(ctx, "client", tandemBin, append(append([]string{"realserver"}, args...), "--state-dir", state)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	sysctl := func(path string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := l.Command(ctx, "client", "cat", "/proc/sys/net/ipv4/conf/"+path).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	before := map[string]string{}
	for _, p := range []string{"all/arp_ignore", "all/arp_announce", "lo/arp_ignore", "lo/arp_announce"} {
		before[p] = sysctl(p)
	}
	vips := "192.168.1.100,192.168.1.101"
	if out, code := run("status", "--vip", vips); code != 1 {
		t.Errorf("status before up: exit %d, want 1 (not ready)\n%s", code, out)
	}
	if out, code := run("up", "--vip", vips); code != 0 {
		t.Fatalf("up: exit %d\n%s", code, out)
	}
	if label, ok := addrLabel(t, l, "client", "lo", vip001); !ok || label != "lo:0" {
		t.Errorf("VIP on lo: present %t, label %q; want lo:0", ok, label)
	}
	if !holds(t, l, "client", "lo", vip001b) {
		t.Error("second VIP not on lo")
	}
	for p, want := range map[string]string{"all/arp_ignore": "1", "all/arp_announce": "2", "lo/arp_ignore": "1", "lo/arp_announce": "2"} {
		if got := sysctl(p); got != want {
			t.Errorf("%s = %s after up, want %s", p, got, want)
		}
	}
	if out, code := run("status", "--vip", vips); code != 0 || strings.Contains(out, "NOT READY") {
		t.Errorf("status after up: exit %d\n%s", code, out)
	}
	if out, code := run("up", "--vip", vips); code != 0 || !strings.Contains(out, "added VIPs: none; sysctls changed: 0") {
		t.Errorf("second up must add nothing: exit %d\n%s", code, out)
	}
	if out, code := run("down"); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, out)
	}
	if holds(t, l, "client", "lo", vip001) || holds(t, l, "client", "lo", vip001b) {
		t.Error("down left a VIP on lo")
	}
	for p, want := range before {
		if got := sysctl(p); got != want {
			t.Errorf("%s = %s after down, want the original %s", p, got, want)
		}
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("down left its state file: %v", entries)
	}
	if out, code := run("down"); code == 0 || !strings.Contains(out, "nothing to undo") {
		t.Errorf("a second down must say there is nothing to undo: exit %d\n%s", code, out)
	}
}
