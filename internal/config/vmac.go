package config

import (
	"encoding/json"
	"net"
	"net/netip"
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

	// IPVLAN is use_ipvlan: the interface is an ipvlan in L2 mode, which
	// shares its parent's MAC (MAC is then nil), instead of a macvlan.
	IPVLAN *IPVLAN `json:"ipvlan,omitempty"`

	macvlan    bool             // use_vmac was given
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

// IPVLAN is use_ipvlan's own settings (keepalived.conf(5) vrrp_instance
// use_ipvlan [IFNAME] [ADDRESS] [bridge|private|vepa]).
type IPVLAN struct {
	// Addr is the ipvlan's own address, which the adverts are sent from
	// unless unicast_src_ip or mcast_src_ip is given; an IPv4 instance
	// needs one (keepalived vrrp.c: "IPv4 ipvlan requires a source ip
	// address").
	Addr netip.Prefix `json:"address,omitzero"`
	// Mode is the ipvlan's flag: bridge (the default), private or vepa.
	Mode string `json:"mode,omitempty"`

	pos       Pos  // the keyword, for finalizeVMAC's messages
	modeSet   bool // a mode was given
	addrGiven bool // an address was given
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
		v.Pos, v.macvlan = n.Keyword.Pos, true
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

// useIPVLAN reads "use_ipvlan [IFNAME] [ADDRESS[/LEN]] [bridge|private|
// vepa]" in any order, as keepalived's vrrp_ipvlan_handler does: a word
// that is a mode or an address is one, any other is the interface name;
// a second of a kind is ignored with a warning. The ipvlan takes the
// place of a macvlan: given with use_vmac, it is the one keepalived
// creates.
func (p *parser) useIPVLAN(in *Instance) handler {
	return func(n *node) {
		if !p.noBlock(n) {
			return
		}
		if in.VMAC != nil && in.VMAC.IPVLAN != nil {
			p.warnf(n.Keyword.Pos, "use_ipvlan already given; ignored, as keepalived does")
			return
		}
		v := in.VMAC
		if v == nil {
			v = &VMAC{Pos: n.Keyword.Pos}
		}
		iv := &IPVLAN{pos: n.Keyword.Pos}
		v.IPVLAN = iv
		in.VMAC = v
		for _, a := range n.Args {
			switch a.Text {
			case "bridge", "private", "vepa":
				if iv.modeSet {
					p.warnf(a.Pos, "use_ipvlan: mode already given; %q ignored, as keepalived does", a.Text)
					continue
				}
				iv.Mode, iv.modeSet = a.Text, true
				continue
			}
			if pfx, ok := parseAddrOrPrefix(a.Text); ok {
				if iv.addrGiven {
					p.warnf(a.Pos, "use_ipvlan: address already given; %q ignored, as keepalived does", a.Text)
					continue
				}
				iv.Addr, iv.addrGiven = pfx, true
				continue
			}
			switch {
			case v.named:
				p.warnf(a.Pos, "use_ipvlan: interface name already given; %q ignored, as keepalived does", a.Text)
			case !validIfName(a.Text):
				p.warnf(a.Pos, "use_ipvlan: interface name %q too long or invalid; ignored, as keepalived does", a.Text)
			default:
				v.Name, v.named = a.Text, true
			}
		}
		if iv.Mode == "bridge" {
			iv.Mode = "" // the default
		}
	}
}

// parseAddrOrPrefix reads ADDRESS or ADDRESS/LEN; a bare address is a
// host prefix.
func parseAddrOrPrefix(s string) (netip.Prefix, bool) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
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
	if iv := v.IPVLAN; iv != nil {
		p.finalizeIPVLAN(in, v, iv, xb)
		return
	}
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

// finalizeIPVLAN settles use_ipvlan as keepalived's vrrp_complete_instance
// does: no MAC of its own, vmac_xmit_base ignored (it "is only valid with
// a vmac"), an address of the other family dropped, and an IPv4 instance
// without an address refused (keepalived keeps it in FAULT for good).
func (p *parser) finalizeIPVLAN(in *Instance, v *VMAC, iv *IPVLAN, xb *Pos) {
	if v.macvlan {
		p.warnf(iv.pos, "vrrp_instance %s: use_vmac and use_ipvlan both given; the ipvlan is created, as keepalived does", in.Name)
	}
	v.MAC = nil
	if xb != nil {
		p.warnf(*xb, "vmac_xmit_base is only valid with use_vmac, not use_ipvlan; ignored, as keepalived does")
		v.XmitBase = false
	}
	if iv.Addr.IsValid() && iv.Addr.Addr().Is6() != in.IPv6 {
		p.warnf(iv.pos, "vrrp_instance %s: use_ipvlan address %s is not of the instance's family; ignored, as keepalived does", in.Name, iv.Addr)
		iv.Addr = netip.Prefix{}
	}
	if !in.IPv6 && !iv.Addr.IsValid() {
		p.errorf(iv.pos, "vrrp_instance %s: an IPv4 use_ipvlan needs the ipvlan's address (use_ipvlan [IFNAME] ADDRESS): keepalived keeps the instance in FAULT without one", in.Name)
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
