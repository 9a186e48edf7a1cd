package config

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func TestVirtualMAC(t *testing.T) {
	for _, c := range []struct {
		vrid int
		v6   bool
		want string
	}{
		{1, false, "00:00:5e:00:01:01"},
		{51, false, "00:00:5e:00:01:33"},
		{255, true, "00:00:5e:00:02:ff"},
	} {
		if got := VirtualMAC(c.vrid, c.v6).String(); got != c.want {
			t.Errorf("VirtualMAC(%d, v6=%t) = %s, want %s (RFC 5798 §7.3)", c.vrid, c.v6, got, c.want)
		}
	}
}

// TestVMACName: keepalived's create_vmac_name order of candidates.
func TestVMACName(t *testing.T) {
	taken := func(names ...string) func(string) bool {
		return func(s string) bool {
			for _, n := range names {
				if n == s {
					return true
				}
			}
			return false
		}
	}
	for _, c := range []struct {
		prefix string
		vrid   int
		v6     bool
		taken  []string
		want   string
	}{
		{"vrrp", 51, false, nil, "vrrp.51"},
		{"vrrp", 51, false, []string{"vrrp.51"}, "vrrp1.51"},
		{"vrrp", 51, false, []string{"vrrp.51", "vrrp1.51"}, "vrrp2.51"},
		{"vrrp", 51, true, []string{"vrrp.51"}, "vrrp6.51"},
		{"vrrp", 51, true, []string{"vrrp.51", "vrrp6.51"}, "vrrp1.51"},
		{"vrrp", 51, true, []string{"vrrp.51", "vrrp6.51", "vrrp1.51", "vrrp2.51", "vrrp3.51", "vrrp4.51", "vrrp5.51"}, "vrrp7.51"},
		// The prefix is cut to fit 15 bytes.
		{"averyverylongprefix", 200, false, nil, "averyverylo.200"},
		{"averyverylongprefix", 200, false, []string{"averyverylo.200"}, "averyveryl1.200"},
	} {
		if got := vmacName(c.prefix, c.vrid, c.v6, taken(c.taken...)); got != c.want {
			t.Errorf("vmacName(%q, %d, v6=%t, taken %v) = %q, want %q", c.prefix, c.vrid, c.v6, c.taken, got, c.want)
		}
	}
}

func vmacInstance(name, iface string, vrid int, vip, extra string) string {
	return "vrrp_instance " + name + " {\n  interface " + iface + "\n  virtual_router_id " + strconv.Itoa(vrid) +
		"\n  priority 100\n" + extra + "  virtual_ipaddress {\n    " + vip + "\n  }\n}\n"
}

// TestUseVMAC: what use_vmac and vmac_xmit_base read into, and keepalived's
// adjustments with their warnings.
func TestUseVMAC(t *testing.T) {
	type want struct {
		name, mac string
		xmitBase  bool
	}
	for _, c := range []struct {
		name  string
		src   string
		want  map[string]*want // by instance; nil = no VMAC
		warns []string
	}{
		{
			name: "default names per family and interface",
			src: vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac\n") +
				vmacInstance("B", "eth1", 51, "10.0.1.1/24", "  use_vmac\n") +
				vmacInstance("C", "eth0", 51, "fd00::1/64", "  use_vmac\n  version 3\n") +
				vmacInstance("D", "eth0", 52, "10.0.0.2/24", ""),
			want: map[string]*want{
				"A": {"vrrp.51", "00:00:5e:00:01:33", false},
				"B": {"vrrp1.51", "00:00:5e:00:01:33", false},
				"C": {"vrrp6.51", "00:00:5e:00:02:33", false},
				"D": nil,
			},
		},
		{
			name: "vmac_prefix",
			src:  "global_defs {\n  vmac_prefix vm\n}\n" + vmacInstance("A", "eth0", 7, "10.0.0.1/24", "  use_vmac\n"),
			want: map[string]*want{"A": {"vm.7", "00:00:5e:00:01:07", false}},
		},
		{
			name: "a configured name, before and after name, and a MAC",
			src: vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac vip51 02:11:22:33:44:55\n  vmac_xmit_base\n") +
				vmacInstance("B", "eth0", 52, "10.0.0.2/24", "  use_vmac name vip52 02:11:22:33:44\n"),
			want: map[string]*want{
				"A": {"vip51", "02:11:22:33:44:55", true},
				"B": {"vip52", "02:11:22:33:44:34", false}, // 5 octets: the VRID completes
			},
		},
		{
			name:  "a configured name taken by an earlier instance's interface",
			src:   vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac eth0\n"),
			want:  map[string]*want{"A": {"vrrp.51", "00:00:5e:00:01:33", false}},
			warns: []string{`VMAC name eth0 is already in use`},
		},
		{
			name: "bad MACs and names are ignored with a warning",
			src: vmacInstance("A", "eth0", 51, "10.0.0.1/24",
				"  use_vmac 01:00:5e:00:00:01 00:00:5e:00:01:05 zz:11 averyverylonginterfacename group g1 netlink_notify_msg\n"),
			want:  map[string]*want{"A": {"vrrp.51", "00:00:5e:00:01:33", false}},
			warns: []string{"is multicast", "RFC 5798 virtual MAC", "invalid MAC", "too long or invalid", `option "group"`, `option "netlink_notify_msg"`},
		},
		{
			name: "unicast forces vmac_xmit_base",
			src: vmacInstance("A", "eth0", 51, "10.0.0.1/24",
				"  use_vmac\n  unicast_src_ip 10.0.0.5\n  unicast_peer {\n    10.0.0.6\n  }\n"),
			want:  map[string]*want{"A": {"vrrp.51", "00:00:5e:00:01:33", true}},
			warns: []string{"unicast with use_vmac requires vmac_xmit_base"},
		},
		{
			name:  "strict mode resets vmac_xmit_base",
			src:   "global_defs {\n  vrrp_strict\n}\n" + vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac\n  vmac_xmit_base\n"),
			want:  map[string]*want{"A": {"vrrp.51", "00:00:5e:00:01:33", false}},
			warns: []string{"incompatible with strict mode"},
		},
		{
			name:  "vmac_xmit_base alone",
			src:   vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  vmac_xmit_base\n"),
			want:  map[string]*want{"A": nil},
			warns: []string{"only valid with use_vmac"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(c.src), Options{ConfigID: "t"})
			if diags.HasErrors() {
				t.Fatalf("errors: %v", diags)
			}
			for _, in := range cfg.Instances {
				w, ok := c.want[in.Name]
				if !ok {
					t.Fatalf("unexpected instance %s", in.Name)
				}
				switch {
				case w == nil && in.VMAC != nil:
					t.Errorf("%s: VMAC %+v, want none", in.Name, in.VMAC)
				case w != nil && in.VMAC == nil:
					t.Errorf("%s: no VMAC, want %+v", in.Name, *w)
				case w != nil:
					got := want{in.VMAC.Name, in.VMAC.MAC.String(), in.VMAC.XmitBase}
					if got != *w {
						t.Errorf("%s: VMAC %+v, want %+v", in.Name, got, *w)
					}
				}
			}
			expectDiags(t, diags, c.warns)
			// The formatted configuration reads back the same.
			var buf strings.Builder
			if err := Format(&buf, cfg); err != nil {
				t.Fatal(err)
			}
			back, d2 := Parse("back.conf", []byte(buf.String()), Options{ConfigID: "t"})
			if d2.HasErrors() {
				t.Fatalf("formatted config does not parse: %v", d2)
			}
			for i, in := range back.Instances {
				if !same(in.VMAC, cfg.Instances[i].VMAC) {
					t.Errorf("%s: VMAC after format %+v, before %+v", in.Name, in.VMAC, cfg.Instances[i].VMAC)
				}
			}
		})
	}
}

// TestDiffVMAC: adding or removing use_vmac, or changing its name or
// vmac_xmit_base, re-creates that instance alone.
func TestDiffVMAC(t *testing.T) {
	base := vmacInstance("A", "eth0", 51, "10.0.0.1/24", "") + vmacInstance("B", "eth0", 52, "10.0.0.2/24", "")
	withVMAC := vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac\n") + vmacInstance("B", "eth0", 52, "10.0.0.2/24", "")
	named := vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac vipA\n") + vmacInstance("B", "eth0", 52, "10.0.0.2/24", "")
	xmit := vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac\n  vmac_xmit_base\n") + vmacInstance("B", "eth0", 52, "10.0.0.2/24", "")
	for _, c := range []struct {
		name     string
		old, new string
		want     Change
	}{
		{"add", base, withVMAC, Recreated},
		{"remove", withVMAC, base, Recreated},
		{"rename", withVMAC, named, Recreated},
		{"xmit base", withVMAC, xmit, Recreated},
		{"same", withVMAC, withVMAC, Unchanged},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Diff(mustParseDiff(t, c.old), mustParseDiff(t, c.new))
			for _, id := range d.Instances {
				name := id.New.Name
				want := Unchanged
				if name == "A" {
					want = c.want
				}
				if id.Change != want {
					t.Errorf("%s: %v, want %v", name, id.Change, want)
				}
			}
		})
	}
}

// TestVMACJSON: tandem check --dump shows the MAC as text.
func TestVMACJSON(t *testing.T) {
	b, err := json.Marshal(&VMAC{Name: "vrrp.51", MAC: VirtualMAC(51, false), XmitBase: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"vrrp.51","xmit_base":true,"mac":"00:00:5e:00:01:33"}`; string(b) != want {
		t.Errorf("json %s, want %s", b, want)
	}
}

// TestUseIPVLAN: use_ipvlan [IFNAME] [ADDRESS] [bridge|private|vepa], in
// any order, as keepalived's vrrp_ipvlan_handler reads it, and the checks
// of its vrrp_complete_instance.
func TestUseIPVLAN(t *testing.T) {
	type want struct{ name, addr, mode string }
	v6 := func(extra string) string {
		return vmacInstance("A", "eth0", 51, "fd00::1/64", "  version 3\n"+extra)
	}
	for _, c := range []struct {
		name   string
		src    string
		want   *want // instance A's; nil: an error
		diags  []string
		errors bool
	}{
		{"name, address with a prefix, mode", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_ipvlan ipv1 10.0.0.5/24 private\n"), &want{"ipv1", "10.0.0.5/24", "private"}, nil, false},
		{"address alone: default name, host prefix, bridge", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_ipvlan 10.0.0.5\n"), &want{"vrrp.51", "10.0.0.5/32", ""}, nil, false},
		{"any order, seconds ignored", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_ipvlan vepa 10.0.0.5 bridge 10.0.0.6 ipvA ipvB\n"),
			&want{"ipvA", "10.0.0.5/32", "vepa"}, []string{"mode already given", "address already given", "interface name already given"}, false},
		{"IPv6 without address", v6("  use_ipvlan\n"), &want{"vrrp.51", "", ""}, nil, false},
		{"address of the other family", v6("  use_ipvlan 10.0.0.5\n"), &want{"vrrp.51", "", ""}, []string{"not of the instance's family"}, false},
		{"use_vmac as well", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_vmac\n  use_ipvlan 10.0.0.5\n"), &want{"vrrp.51", "10.0.0.5/32", ""}, []string{"use_vmac and use_ipvlan both given"}, false},
		{"vmac_xmit_base", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_ipvlan 10.0.0.5\n  vmac_xmit_base\n"), &want{"vrrp.51", "10.0.0.5/32", ""}, []string{"only valid with use_vmac, not use_ipvlan"}, false},
		{"given twice", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_ipvlan 10.0.0.5\n  use_ipvlan 10.0.0.6\n"), &want{"vrrp.51", "10.0.0.5/32", ""}, []string{"use_ipvlan already given"}, false},
		{"IPv4 without address", vmacInstance("A", "eth0", 51, "10.0.0.1/24", "  use_ipvlan ipv1\n"), nil, []string{"an IPv4 use_ipvlan needs the ipvlan's address"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(c.src), Options{ConfigID: "t"})
			expectDiags(t, diags, c.diags)
			if diags.HasErrors() != c.errors {
				t.Fatalf("errors %t, want %t: %v", diags.HasErrors(), c.errors, diags)
			}
			if c.want == nil {
				return
			}
			v := cfg.Instances[0].VMAC
			if v == nil || v.IPVLAN == nil {
				t.Fatalf("VMAC %+v, want an ipvlan", v)
			}
			got := want{v.Name, "", v.IPVLAN.Mode}
			if v.IPVLAN.Addr.IsValid() {
				got.addr = v.IPVLAN.Addr.String()
			}
			if got != *c.want || v.MAC != nil || v.XmitBase {
				t.Errorf("ipvlan %+v, MAC %v, xmit_base %t; want %+v, no MAC, no xmit_base", got, v.MAC, v.XmitBase, *c.want)
			}
			var buf strings.Builder
			if err := Format(&buf, cfg); err != nil {
				t.Fatal(err)
			}
			back, d2 := Parse("back.conf", []byte(buf.String()), Options{ConfigID: "t"})
			if d2.HasErrors() || !same(back.Instances[0].VMAC, v) {
				t.Errorf("after format: %+v (%v), before %+v\n%s", back.Instances[0].VMAC, d2, v, buf.String())
			}
		})
	}
}

// expectDiags fails unless diags hold a message with each of want, or
// none at all when want is empty.
func expectDiags(t *testing.T, diags Diagnostics, want []string) {
	t.Helper()
	var msgs []string
	for _, d := range diags {
		msgs = append(msgs, d.Msg)
	}
	all := strings.Join(msgs, "\n")
	for _, s := range want {
		if !strings.Contains(all, s) {
			t.Errorf("no diagnostic with %q in:\n%s", s, all)
		}
	}
	if len(want) == 0 && len(diags) > 0 {
		t.Errorf("unexpected diagnostics: %v", diags)
	}
}
