package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/config"
	"tandem/internal/lab"
)

// staticCalls records what the static code asks of the kernel, one line
// per call.
type staticCalls struct {
	calls  []string
	refuse string // a call refused with an error
}

// expect checks the calls since the last expect, and forgets them.
func (k *staticCalls) expect(t *testing.T, what string, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, k.calls); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", what, diff)
	}
	k.calls = nil
}

func (k *staticCalls) do(call string) error {
	k.calls = append(k.calls, call)
	if call == k.refuse {
		return errors.New("refused")
	}
	return nil
}

func (k *staticCalls) AddAddress(iface string, a *config.IPAddress) error {
	return k.do(fmt.Sprintf("add addr %s dev %s", a.Prefix, a.Dev))
}
func (k *staticCalls) DelAddress(iface string, a *config.IPAddress) error {
	return k.do(fmt.Sprintf("del addr %s dev %s", a.Prefix, a.Dev))
}
func (k *staticCalls) AddRoute(iface string, r *config.Route) error {
	return k.do(fmt.Sprintf("add route %s via %s", r.Dst, r.Via))
}
func (k *staticCalls) DelRoute(iface string, r *config.Route) error {
	return k.do(fmt.Sprintf("del route %s via %s", r.Dst, r.Via))
}
func (k *staticCalls) AddRule(r *config.Rule) error {
	return k.do(fmt.Sprintf("add rule from %s table %d", r.From, r.Table))
}
func (k *staticCalls) DelRule(r *config.Rule) error {
	return k.do(fmt.Sprintf("del rule from %s table %d", r.From, r.Table))
}

const staticConf = `global_defs {
    default_interface eth1
}
static_ipaddress {
    192.0.2.1/24 dev eth0
    198.51.100.1/24
}
static_routes {
    10.1.0.0/16 via 192.0.2.254
    10.2.0.0/16 via 192.0.2.254
}
static_rules {
    from 10.3.0.0/16 table 100
}
`

// TestStaticLifecycle: static entries are added at start after what an
// earlier run may have left is removed (keepalived's order); a reload
// removes and adds only what config.Diff says changed, nothing else; stop
// removes all of them, rules first. An address without dev goes on
// default_interface.
func TestStaticLifecycle(t *testing.T) {
	cfg := lab.ParseConfig(t, staticConf)
	k := &staticCalls{}
	installStatic(k, cfg, lab.TestLogger(t))
	k.expect(t, "start", []string{
		"del rule from 10.3.0.0/16 table 100",
		"del route 10.1.0.0/16 via 192.0.2.254",
		"del route 10.2.0.0/16 via 192.0.2.254",
		"del addr 192.0.2.1/24 dev eth0",
		"del addr 198.51.100.1/24 dev eth1",
		"add addr 192.0.2.1/24 dev eth0",
		"add addr 198.51.100.1/24 dev eth1",
		"add route 10.1.0.0/16 via 192.0.2.254",
		"add route 10.2.0.0/16 via 192.0.2.254",
		"add rule from 10.3.0.0/16 table 100",
	})

	// A route's gateway changes, an address goes, a rule comes; the
	// other route and address are not touched.
	next := lab.ParseConfig(t, `global_defs {
    default_interface eth1
}
static_ipaddress {
    192.0.2.1/24 dev eth0
}
static_routes {
    10.1.0.0/16 via 192.0.2.253
    10.2.0.0/16 via 192.0.2.254
}
static_rules {
    from 10.3.0.0/16 table 100
    from 10.4.0.0/16 table 101
}
`)
	if errs := reloadStatic(k, config.Diff(cfg, next)); len(errs) > 0 {
		t.Fatal(errs)
	}
	k.expect(t, "reload", []string{
		"del route 10.1.0.0/16 via 192.0.2.254",
		"del addr 198.51.100.1/24 dev eth1",
		"add route 10.1.0.0/16 via 192.0.2.253",
		"add rule from 10.4.0.0/16 table 101",
	})

	// An unchanged reload (the same file read again) touches nothing.
	if errs := reloadStatic(k, config.Diff(cfg, lab.ParseConfig(t, staticConf))); len(errs) > 0 || len(k.calls) != 0 {
		t.Fatalf("unchanged reload: calls %v, errors %v", k.calls, errs)
	}

	// Stop: everything of the running configuration, rules first; a
	// refusal is reported and the rest still goes.
	k.refuse = "del route 10.2.0.0/16 via 192.0.2.254"
	errs := removeStatic(k, next)
	k.expect(t, "stop", []string{
		"del rule from 10.3.0.0/16 table 100",
		"del rule from 10.4.0.0/16 table 101",
		"del route 10.1.0.0/16 via 192.0.2.253",
		"del route 10.2.0.0/16 via 192.0.2.254",
		"del addr 192.0.2.1/24 dev eth0",
	})
	if len(errs) != 1 {
		t.Fatalf("stop errors = %v, want the one refusal", errs)
	}
}
