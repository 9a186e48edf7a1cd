package config

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"unicode"
)

// VMAC is an instance's use_vmac (keepalived.conf(5), vrrp_instance): a
// macvlan interface on the instance's interface, with the virtual router's
// MAC address (RFC 5798 §7.3), that carries the virtual addresses, so that
// neighbours keep the same MAC for them whichever router is master.
type VMAC struct {
	Pos Pos `json:"-"`
	// Name is the macvlan's interface name: as configured, or chosen at
	// load as keepalived chooses it (vmacNames).
	Name string `json:"name"`
	// MAC is the macvlan's address: 00:00:5e:00:01:VRID (IPv4) or
	// 00:00:5e:00:02:VRID (IPv6) unless configured.
	MAC net.HardwareAddr `json:"-"`
	// XmitBase is vmac_xmit_base: adverts go out of the base interface
	// (with its MAC) rather than the macvlan.
	XmitBase bool `json:"xmit_base,omitempty"`

	named      bool             // a name was configured
	configured net.HardwareAddr // a MAC was configured
	partial    bool             // the configured MAC is 5 octets, the VRID completes it
}

// MarshalJSON shows the MAC as text (net.HardwareAddr is bytes to
// encoding/json), for tandem check --dump.
func (v VMAC) MarshalJSON() ([]byte, error) {
	type plain VMAC
	return json.Marshal(struct {
		plain
		MAC string `json:"mac"`
	}{plain(v), v.MAC.String()})
}

// vmacOUI is the IANA prefix of VRRP virtual MACs (RFC 5798 §7.3).
var vmacOUI = [4]byte{0x00, 0x00, 0x5e, 0x00}

// VirtualMAC is the RFC 5798 §7.3 virtual router MAC address:
// 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
func VirtualMAC(vrid int, ipv6 bool) net.HardwareAddr {
	fam := byte(0x01)
	if ipv6 {
		fam = 0x02
	}
	return net.HardwareAddr{vmacOUI[0], vmacOUI[1], vmacOUI[2], vmacOUI[3], fam, byte(vrid)}
}

// useVMAC reads "use_vmac [[name] NAME] [MAC]" (keepalived vrrp_parser.c:
// an argument with a ':' is a MAC address, since interface names cannot
// hold one; "name" may precede the name). keepalived's further options
// (group, netlink_notify_msg) are warned about and ignored.
func (p *parser) useVMAC(in *Instance) handler {
	return func(n *node) {
		if !p.noBlock(n) {
			return
		}
		v := in.VMAC
		if v == nil {
			v = &VMAC{}
		}
		v.Pos = n.Keyword.Pos
		in.VMAC = v
		args := n.Args
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case strings.Contains(a.Text, ":"):
				mac, partial, ok := parseVMACAddr(a.Text)
				switch {
				case !ok:
					p.warnf(a.Pos, "use_vmac: invalid MAC address %q ignored, as keepalived does", a.Text)
				case mac[0]&1 != 0:
					p.warnf(a.Pos, "use_vmac: MAC address %q is multicast; ignored, as keepalived does", a.Text)
				case [4]byte(mac[:4]) == vmacOUI && (mac[4] == 1 || mac[4] == 2):
					p.warnf(a.Pos, "use_vmac: MAC address %q is an RFC 5798 virtual MAC, which is the default; ignored, as keepalived does", a.Text)
				default:
					v.configured, v.partial = mac, partial
				}
			case a.Text == "group" || a.Text == "netlink_notify_msg":
				p.warnf(a.Pos, "use_vmac: option %q is not supported by Tandem; ignored", a.Text)
				if a.Text == "group" {
					i++
				}
			default:
				if a.Text == "name" && i+1 < len(args) {
					i++
					a = args[i]
				}
				if !validIfName(a.Text) {
					p.warnf(a.Pos, "use_vmac: interface name %q too long or invalid; ignored, as keepalived does", a.Text)
					continue
				}
				v.Name, v.named = a.Text, true
			}
		}
	}
}

// vmacXmitBase reads vmac_xmit_base, settled with use_vmac at finalize.
func (p *parser) vmacXmitBase(u *instanceUnset) handler {
	return func(n *node) {
		if p.noBlock(n) && p.args(n, 0, 0) {
			u.xmitBase = &n.Keyword.Pos
		}
	}
}

// parseVMACAddr reads a MAC address of 6 octets, or of 5 that the VRID
// completes (keepalived's use_vmac, "xx:xx:xx:xx:xx[:]").
func parseVMACAddr(s string) (mac net.HardwareAddr, partial, ok bool) {
	parts := strings.Split(strings.TrimSuffix(s, ":"), ":")
	if len(parts) != 5 && len(parts) != 6 {
		return nil, false, false
	}
	if len(parts) == 6 && strings.HasSuffix(s, ":") {
		return nil, false, false
	}
	mac = make(net.HardwareAddr, 6)
	for i, pt := range parts {
		b, err := strconv.ParseUint(pt, 16, 8)
		if err != nil || pt == "" || len(pt) > 2 {
			return nil, false, false
		}
		mac[i] = byte(b)
	}
	return mac, len(parts) == 5, true
}

// validIfName is the kernel's dev_valid_name: 1..15 bytes, not "." or
// "..", no '/', ':' or white space.
func validIfName(s string) bool {
	if s == "" || len(s) > ifNameMax || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) })
}

// finalizeVMAC settles the instance's VMAC once its family is known, as
// keepalived's vrrp_complete_instance and vrrp_end_handler do: the MAC,
// vmac_xmit_base without use_vmac ignored, unicast forcing vmac_xmit_base
// (the macvlan has no address of its own to send unicast from), and
// strict mode refusing it.
func (p *parser) finalizeVMAC(in *Instance) {
	xb := in.unset.xmitBase
	if in.VMAC == nil {
		if xb != nil {
			p.warnf(*xb, "vmac_xmit_base is only valid with use_vmac; ignored, as keepalived does")
		}
		return
	}
	v := in.VMAC
	v.XmitBase = xb != nil
	switch {
	case v.configured != nil:
		v.MAC = append(net.HardwareAddr(nil), v.configured...)
		if v.partial {
			v.MAC[5] = byte(in.VRID)
		}
	default:
		v.MAC = VirtualMAC(in.VRID, in.IPv6)
	}
	if len(in.UnicastPeers) > 0 && !v.XmitBase {
		p.warnf(v.Pos, "vrrp_instance %s: unicast with use_vmac requires vmac_xmit_base; set, as keepalived does", in.Name)
		v.XmitBase = true
	}
	if in.StrictMode && v.XmitBase {
		p.warnf(v.Pos, "vrrp_instance %s: vmac_xmit_base is incompatible with strict mode; reset, as keepalived does", in.Name)
		v.XmitBase = false
	}
}

// vmacNames names the VMACs configured without a name, as keepalived's
// create_vmac_name does: PREFIX.VRID (prefix vmac_prefix, default
// "vrrp"), and when that is taken PREFIXn.VRID with n = 1, 2, ... (for
// IPv6, 6 first, then 1, 2, ... skipping 6); a prefix too long for the
// 15-byte interface name is cut. A name is taken when another instance's
// VMAC or any instance's interface has it. A configured name another
// instance already uses is ignored with a warning, as keepalived does.
func (p *parser) vmacNames(cfg *Config) {
	taken := map[string]bool{}
	for _, in := range cfg.Instances {
		taken[in.Interface] = true
	}
	for _, in := range cfg.Instances {
		v := in.VMAC
		if v == nil || !v.named {
			continue
		}
		if taken[v.Name] {
			p.warnf(v.Pos, "vrrp_instance %s: VMAC name %s is already in use; ignored, as keepalived does", in.Name, v.Name)
			v.Name, v.named = "", false
			continue
		}
		taken[v.Name] = true
	}
	prefix := cfg.Global.VMACPrefix
	if prefix == "" {
		prefix = "vrrp"
	}
	for _, in := range cfg.Instances {
		v := in.VMAC
		if v == nil || v.named {
			continue
		}
		v.Name = vmacName(prefix, in.VRID, in.IPv6, func(s string) bool { return taken[s] })
		taken[v.Name] = true
	}
}

// vmacName is the first of keepalived's candidate names that is not taken.
func vmacName(prefix string, vrid int, ipv6 bool, taken func(string) bool) string {
	name := func(num string) string {
		tail := num + "." + strconv.Itoa(vrid)
		pre := prefix
		if len(pre)+len(tail) > ifNameMax {
			pre = pre[:ifNameMax-len(tail)]
		}
		return pre + tail
	}
	s := name("")
	for n := 0; taken(s); {
		switch {
		case ipv6 && n == 0:
			n = 6
		case ipv6 && n == 6:
			n = 1
		default:
			if n++; ipv6 && n == 6 {
				n++
			}
		}
		s = name(strconv.Itoa(n))
	}
	return s
}
