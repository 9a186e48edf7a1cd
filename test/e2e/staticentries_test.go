package e2e

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"tandem/internal/lab"
)

// staticState is what of the static entries the kernel of a node holds.
type staticState struct {
	addr       bool   // 10.79.1.1/24 on eth0
	routeVia   string // gateway of 10.80.0.0/16, "" if absent
	otherRoute bool   // 10.82.0.0/16
	rule       bool   // from 10.81.0.0/16 lookup 100, preference 1234
}

func readStatic(t *testing.T, l *lab.Lab, node string) staticState {
	t.Helper()
	var st staticState
	err := l.Do(node, func() error {
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			st.addr = st.addr || a.IPNet.String() == "10.79.1.1/24"
		}
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			switch {
			case r.Dst == nil:
			case r.Dst.String() == "10.80.0.0/16":
				st.routeVia = r.Gw.String()
			case r.Dst.String() == "10.82.0.0/16":
				st.otherRoute = true
			}
		}
		rules, err := netlink.RuleList(netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rules {
			st.rule = st.rule || r.Priority == 1234 && r.Table == 100 && r.Src != nil && r.Src.String() == "10.81.0.0/16"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStaticEntries: static_ipaddress, static_routes and static_rules are
// in the kernel once tandem runs, whatever VRRP does (the node is BACKUP
// of nothing: no instance at all); a reload that changes one route's
// gateway replaces that route and sends no netlink change for the
// address or the other route; stop removes them all, as keepalived does
// at exit.
func TestStaticEntries(t *testing.T) {
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "d1", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}}}},
	}})
	const text = `static_ipaddress {
    10.79.1.1/24 dev eth0
}
static_routes {
    10.80.0.0/16 via 10.78.0.254 dev eth0
    10.82.0.0/16 via 10.78.0.254
}
static_rules {
    from 10.81.0.0/16 table 100 priority 1234
}
`
	conf := writeConf(t, "static.conf", text)
	d := startTandem(t, l, "d1", conf, "--dataplane", "none")
	if got, want := readStatic(t, l, "d1"), (staticState{addr: true, routeVia: "10.78.0.254", otherRoute: true, rule: true}); got != want {
		t.Fatalf("after start: %+v, want %+v\n%s", got, want, d.proc.Output())
	}

	// Watch the node's addresses and routes through the reload.
	ns, err := netns.GetFromName(l.NSName("d1"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	done := make(chan struct{})
	defer close(done)
	addrCh, routeCh := make(chan netlink.AddrUpdate, 64), make(chan netlink.RouteUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.RouteSubscribeWithOptions(routeCh, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(strings.Replace(text, "10.80.0.0/16 via 10.78.0.254", "10.80.0.0/16 via 10.78.0.253", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := l.Command(ctx, "d1", tandemBin, "reload", "--socket", d.socket).CombinedOutput(); err != nil {
		t.Fatalf("tandem reload: %v\n%s", err, out)
	}
	if got, want := readStatic(t, l, "d1"), (staticState{addr: true, routeVia: "10.78.0.253", otherRoute: true, rule: true}); got != want {
		t.Fatalf("after reload: %+v, want %+v\n%s", got, want, d.proc.Output())
	}
	// The reload's netlink messages have been sent when reload answers;
	// give their notifications a moment to arrive.
	var changed []string
	for deadline := time.After(time.Second); ; {
		select {
		case u := <-addrCh:
			changed = append(changed, "address "+u.LinkAddress.String())
			continue
		case u := <-routeCh:
			if u.Dst != nil {
				changed = append(changed, "route "+u.Dst.String()+" via "+u.Gw.String())
			}
			continue
		case <-deadline:
		}
		break
	}
	for _, c := range changed {
		if !strings.HasPrefix(c, "route 10.80.0.0/16") {
			t.Errorf("the reload touched %s, which it did not change (all changes: %v)", c, changed)
		}
	}
	if len(changed) == 0 {
		t.Error("no route change seen through netlink: the watch saw nothing")
	}

	if err := d.proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := readStatic(t, l, "d1"); got != (staticState{}) {
		t.Fatalf("after stop: %+v, want nothing left\n%s", got, d.proc.Output())
	}
}
