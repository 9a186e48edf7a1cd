package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	tandemd "tandem/internal/daemon"
	"tandem/internal/lab"
	"tandem/internal/nslock"
)

// TestNetNamespace: tandem run started in node a with a configuration
// naming node b's namespace (net_namespace, as `ip netns add` names it)
// runs in b: the VIP appears on b's eth0, never on a's, and goes when
// tandem stops. Both nodes have an eth0, so a run that stayed in a would
// have found its interface there.
func TestNetNamespace(t *testing.T) {
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "a", Ifaces: []lab.Iface{{Name: "eth0", Switch: "sa", Addrs: []netip.Prefix{netip.MustParsePrefix("10.81.0.1/24")}}}},
		{Name: "b", Ifaces: []lab.Iface{{Name: "eth0", Switch: "sb", Addrs: []netip.Prefix{netip.MustParsePrefix("10.81.0.1/24")}}}},
	}})
	vip := netip.MustParseAddr("10.81.0.100")
	conf := writeConf(t, "netns.conf", fmt.Sprintf(`net_namespace %s
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 54
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.81.0.100/24
    }
}
`, l.NSName("b")))
	d := startTandem(t, l, "a", conf, "--dataplane", "none")
	waitFor(t, "VI_1 MASTER", 15*time.Second, func() bool { return d.state("VI_1") == "MASTER" })
	waitFor(t, "the VIP in b", 10*time.Second, func() bool { return holds(t, l, "b", "eth0", vip) })
	if holds(t, l, "a", "eth0", vip) {
		t.Error("the VIP is in a, the namespace tandem was started in")
	}
	// The one-tandem-per-namespace lock is b's, held by this tandem.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(tandemd.NetnsDir, l.NSName("b")), &st); err != nil {
		t.Fatal(err)
	}
	var h nslock.Holder
	if b, err := os.ReadFile(nslock.Path(nslock.Dir, st.Ino)); err != nil || json.Unmarshal(b, &h) != nil || h.PID != d.proc.Pid() {
		t.Errorf("b's lock %s: %q (%v), want held by pid %d", nslock.Path(nslock.Dir, st.Ino), b, err, d.proc.Pid())
	}
	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.proc.Output())
	}
	if holds(t, l, "b", "eth0", vip) {
		t.Error("the VIP stayed in b after tandem stopped")
	}
}
