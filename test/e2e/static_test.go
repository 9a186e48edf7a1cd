package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestBinaryStatic: the binary the tests run is the static one that ships:
// its ELF headers ask for no dynamic loader (PT_INTERP).
func TestBinaryStatic(t *testing.T) {
	if tandemBin == "" {
		t.Skip("not root: the tandem binary is built only for root e2e runs")
	}
	// The check itself: a dynamically linked program has a loader.
	if interp, err := lab.Interpreter("/bin/sh"); err != nil || interp == "" {
		t.Fatalf("Interpreter(/bin/sh) = %q, %v; want the dynamic loader", interp, err)
	}
	interp, err := lab.Interpreter(tandemBin)
	if err != nil {
		t.Fatal(err)
	}
	if interp != "" {
		t.Errorf("%s is dynamically linked (loader %s), want static (CGO_ENABLED=0)", tandemBin, interp)
	}
}

// TestStartWithoutPasswd: in a root filesystem without /etc/passwd (a
// container built from scratch), a configuration without scripts runs, and
// stops cleanly: no script, so no script user is looked up.
func TestStartWithoutPasswd(t *testing.T) {
	if tandemBin == "" {
		t.Skip("not root: the tandem binary is built only for root e2e runs")
	}
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "d1", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}}}},
	}})
	conf := writeConf(t, "noscripts.conf", `vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 52
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.78.0.100/24
    }
}
`)
	// An empty directory over /etc in a mount namespace of tandem's own;
	// the shell makes sure the password database is gone before it runs
	// tandem.
	emptyEtc := t.TempDir()
	d := startTandemVia(t, l, "d1", conf, []string{"unshare", "--mount", "sh", "-c",
		`mount --bind "$0" /etc && test ! -e /etc/passwd && test ! -e /etc/group && exec "$@"`, emptyEtc},
		"--dataplane", "none")
	waitFor(t, "VI_1 to become MASTER", 15*time.Second, func() bool { return d.state("VI_1") == "MASTER" })
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.proc.Wait(); err != nil {
		t.Errorf("tandem exited with %v, want status 0\n%s", err, d.proc.Output())
	}
	if out := d.proc.Output(); !strings.Contains(out, "tandem stopped") {
		t.Errorf("tandem did not stop cleanly:\n%s", out)
	}
}
