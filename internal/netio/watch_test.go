package netio

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// msg builds an rtnetlink message of type typ: a header struct and
// attributes.
func msg(typ uint16, hdr nl.NetlinkRequestData, attrs ...*nl.RtAttr) syscall.NetlinkMessage {
	b := hdr.Serialize()
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: typ}, Data: b}
}

func link(typ uint16, index int32, flags uint32, name string) syscall.NetlinkMessage {
	ifi := nl.NewIfInfomsg(unix.AF_UNSPEC)
	ifi.Index, ifi.Flags = index, flags
	return msg(typ, ifi, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
}

func TestParseChange(t *testing.T) {
	const upFlags = unix.IFF_UP | unix.IFF_RUNNING
	up := map[int32]bool{3: true}
	rt := func(family, dstLen uint8, table uint8, attrs ...*nl.RtAttr) syscall.NetlinkMessage {
		m := &nl.RtMsg{RtMsg: unix.RtMsg{Family: family, Dst_len: dstLen, Table: table}}
		return msg(unix.RTM_DELROUTE, m, attrs...)
	}
	table := make([]byte, 4)
	nl.NativeEndian().PutUint32(table, 1000)
	addr := func(typ uint16, family int, a netip.Addr) syscall.NetlinkMessage {
		ifa := nl.NewIfAddrmsg(family)
		return msg(typ, ifa, nl.NewRtAttr(unix.IFA_LOCAL, a.AsSlice()), nl.NewRtAttr(unix.IFA_ADDRESS, a.AsSlice()))
	}
	for _, c := range []struct {
		name string
		m    syscall.NetlinkMessage
		want Change
		ok   bool
	}{
		{"down link comes up", link(unix.RTM_NEWLINK, 2, upFlags, "eth1"), Change{Kind: InterfaceUp, Interface: "eth1"}, true},
		{"up link stays up", link(unix.RTM_NEWLINK, 2, upFlags, "eth1"), Change{}, false},
		{"up link loses carrier", link(unix.RTM_NEWLINK, 2, unix.IFF_UP, "eth1"), Change{}, false},
		{"carrier back", link(unix.RTM_NEWLINK, 2, upFlags, "eth1"), Change{Kind: InterfaceUp, Interface: "eth1"}, true},
		{"known up link", link(unix.RTM_NEWLINK, 3, upFlags, "eth2"), Change{}, false},
		{"link deleted", link(unix.RTM_DELLINK, 3, upFlags, "eth2"), Change{}, false},
		{"link back", link(unix.RTM_NEWLINK, 3, upFlags, "eth2"), Change{Kind: InterfaceUp, Interface: "eth2"}, true},
		{"address deleted", addr(unix.RTM_DELADDR, unix.AF_INET, netip.MustParseAddr("192.0.2.1")), Change{Kind: AddressDeleted, Addr: netip.MustParseAddr("192.0.2.1")}, true},
		{"IPv6 address deleted", addr(unix.RTM_DELADDR, unix.AF_INET6, netip.MustParseAddr("2001:db8::1")), Change{Kind: AddressDeleted, Addr: netip.MustParseAddr("2001:db8::1")}, true},
		{"address added", addr(unix.RTM_NEWADDR, unix.AF_INET, netip.MustParseAddr("192.0.2.1")), Change{}, false},
		{"route deleted", rt(unix.AF_INET, 24, unix.RT_TABLE_MAIN, nl.NewRtAttr(unix.RTA_DST, []byte{198, 51, 100, 0})), Change{Kind: RouteDeleted, Dst: netip.MustParsePrefix("198.51.100.0/24"), Table: unix.RT_TABLE_MAIN}, true},
		{"default route deleted from table 1000", rt(unix.AF_INET6, 0, unix.RT_TABLE_COMPAT, nl.NewRtAttr(unix.RTA_TABLE, table)), Change{Kind: RouteDeleted, Dst: netip.MustParsePrefix("::/0"), Table: 1000, V6: true}, true},
		{"rule deleted", msg(unix.RTM_DELRULE, &nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET6}}), Change{Kind: RuleDeleted, V6: true}, true},
		{"truncated", syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_DELROUTE}, Data: []byte{2}}, Change{}, false},
	} {
		got, ok := parseChange(c.m, up)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: got %+v, %t; want %+v, %t", c.name, got, ok, c.want, c.ok)
		}
	}
}
