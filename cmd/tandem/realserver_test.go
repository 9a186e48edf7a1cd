package main

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"

	"tandem/internal/lab"
)

// TestRealserverTunFlags: the --tun flags are checked before anything on
// the host is read or changed.
func TestRealserverTunFlags(t *testing.T) {
	state := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--vip", "192.0.2.100", "--tun-type", "gue", "--tun-port", "6080"}, "need --tun"},
		{[]string{"up", "--vip", "192.0.2.100", "--tun", "--dev", "eth0"}, "--dev does not go with --tun"},
		{[]string{"up", "--vip", "192.0.2.100", "--tun", "--tun-type", "gue"}, "gue needs a UDP port"},
		{[]string{"up", "--vip", "192.0.2.100", "--tun", "--tun-port", "6080"}, "ipip takes no port"},
		{[]string{"status", "--vip", "192.0.2.100", "--tun", "--tun-type", "gre"}, `"gre": want ipip or gue`},
		{[]string{"up", "--tun"}, "--vip IP[,IP...] is required"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"realserver"}, append(c.args, "--state-dir", state)...)
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("rejected commands left records: %v", entries)
	}
}

// TestRealserverUpTunNoKernel: on a kernel without the ipip driver (this
// machine's), `realserver up --vip X --tun` fails naming the missing
// kernel support and records nothing (internal/realserver checks that
// nothing changed).
func TestRealserverUpTunNoKernel(t *testing.T) {
	if _, err := os.Stat("/sys/module/ipip"); err == nil {
		t.Skip("this kernel has ipip loaded: up --tun would succeed")
	}
	lab.RequireRoot(t)
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{{Name: "rs", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}}}}}})
	state := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := -1
	if err := l.Do("rs", func() error {
		code = run([]string{"realserver", "up", "--vip", "192.0.2.100", "--tun", "--state-dir", state}, &stdout, &stderr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code != 2 || !strings.Contains(stderr.String(), "cannot decapsulate LVS-TUN packets") || !strings.Contains(stderr.String(), "CONFIG_NET_IPIP") {
		t.Errorf("up --tun: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if entries, _ := os.ReadDir(state); len(entries) != 0 {
		t.Errorf("a failed up --tun left a record: %v", entries)
	}
}
