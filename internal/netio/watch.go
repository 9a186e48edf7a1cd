package netio

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// LinkUp is keepalived's test of an interface being up (vrrp_if.h
// FLAGS_UP): administratively up and running (carrier present).
func LinkUp(flags uint32) bool {
	return flags&(unix.IFF_UP|unix.IFF_RUNNING) == unix.IFF_UP|unix.IFF_RUNNING
}

// ChangeKind is what a Change reports.
type ChangeKind int

const (
	// InterfaceUp: an interface came up (it was down or did not exist).
	InterfaceUp ChangeKind = iota + 1
	// AddressDeleted: an address left an interface.
	AddressDeleted
	// RouteDeleted: a route left a table.
	RouteDeleted
	// RuleDeleted: a policy-routing rule was deleted.
	RuleDeleted
	// Overrun: the kernel dropped changes (the socket's buffer was
	// full); any of the above may have been lost.
	Overrun
)

// Change is one change of the host's interfaces, addresses, routes or
// rules that the static entries' keeper acts on (keepalived's netlink
// reflector: keepalived_netlink.c).
type Change struct {
	Kind ChangeKind
	// Interface is the interface that came up (InterfaceUp).
	Interface string
	// Addr is the deleted address (AddressDeleted).
	Addr netip.Addr
	// Dst and Table are the deleted route's destination and table
	// (RouteDeleted).
	Dst   netip.Prefix
	Table uint32
	// V6 is the deleted route's or rule's family.
	V6 bool
}

// WatchChanges sends the host's interface, address, route and rule
// changes to out, in the namespace of the calling thread (the process's),
// until ctx ends. Deletions are sent as they come; an interface is sent
// when it goes from down (or absent) to up, as keepalived's interface_up
// sees it.
func WatchChanges(ctx context.Context, out chan<- Change) error {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK,
		unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
		unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE,
		unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
	if err != nil {
		return fmt.Errorf("netlink: subscribe to link, address, route and rule changes: %w", err)
	}
	// Subscribed before the links are read, so no change is lost.
	links, err := netlink.LinkList()
	if err != nil {
		s.Close()
		return fmt.Errorf("netlink: list interfaces: %w", err)
	}
	up := map[int32]bool{}
	for _, l := range links {
		up[int32(l.Attrs().Index)] = LinkUp(l.Attrs().RawFlags)
	}
	stop := context.AfterFunc(ctx, s.Close) // ends the Receive below
	defer func() {
		if stop() {
			s.Close()
		}
	}()
	send := func(c Change) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		msgs, from, err := s.Receive()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			if !send(Change{Kind: Overrun}) {
				return nil
			}
			continue
		default:
			return fmt.Errorf("netlink: receive: %w", err)
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		for _, m := range msgs {
			if c, ok := parseChange(m, up); ok && !send(c) {
				return nil
			}
		}
	}
}

// parseChange reads one rtnetlink message; up holds each interface's
// last state, by index, and is updated from link messages. It reports
// false for a message that is no Change.
func parseChange(m syscall.NetlinkMessage, up map[int32]bool) (Change, bool) {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(m.Data) < unix.SizeofIfInfomsg {
			return Change{}, false
		}
		ifi := nl.DeserializeIfInfomsg(m.Data)
		was := up[ifi.Index]
		now := m.Header.Type == unix.RTM_NEWLINK && LinkUp(ifi.Flags)
		up[ifi.Index] = now
		if was || !now {
			return Change{}, false
		}
		name, ok := attr(m.Data[unix.SizeofIfInfomsg:], unix.IFLA_IFNAME)
		if !ok || len(name) == 0 {
			return Change{}, false
		}
		if name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		return Change{Kind: InterfaceUp, Interface: string(name)}, true
	case unix.RTM_DELADDR:
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return Change{}, false
		}
		rest := m.Data[unix.SizeofIfAddrmsg:]
		// IFA_LOCAL is the address itself; IFA_ADDRESS is the peer's on
		// a point-to-point address, else the same.
		v, ok := attr(rest, unix.IFA_LOCAL)
		if !ok {
			v, ok = attr(rest, unix.IFA_ADDRESS)
		}
		a, valid := netip.AddrFromSlice(v)
		if !ok || !valid {
			return Change{}, false
		}
		return Change{Kind: AddressDeleted, Addr: a.Unmap()}, true
	case unix.RTM_DELROUTE:
		if len(m.Data) < unix.SizeofRtMsg {
			return Change{}, false
		}
		rt := nl.DeserializeRtMsg(m.Data)
		rest := m.Data[unix.SizeofRtMsg:]
		var zero netip.Addr
		switch rt.Family {
		case unix.AF_INET:
			zero = netip.IPv4Unspecified()
		case unix.AF_INET6:
			zero = netip.IPv6Unspecified()
		default:
			return Change{}, false
		}
		dst := zero
		if v, ok := attr(rest, unix.RTA_DST); ok {
			a, valid := netip.AddrFromSlice(v)
			if !valid || a.Is4() != zero.Is4() {
				return Change{}, false
			}
			dst = a
		}
		table := uint32(rt.Table)
		if v, ok := attr(rest, unix.RTA_TABLE); ok && len(v) == 4 {
			table = nl.NativeEndian().Uint32(v)
		}
		return Change{Kind: RouteDeleted, Dst: netip.PrefixFrom(dst, int(rt.Dst_len)), Table: table, V6: rt.Family == unix.AF_INET6}, true
	case unix.RTM_DELRULE:
		// A fib_rule_hdr starts with the family, as an rtmsg does.
		if len(m.Data) < 1 || (m.Data[0] != unix.AF_INET && m.Data[0] != unix.AF_INET6) {
			return Change{}, false
		}
		return Change{Kind: RuleDeleted, V6: m.Data[0] == unix.AF_INET6}, true
	}
	return Change{}, false
}

// attr returns the value of the rtnetlink attribute typ in b.
func attr(b []byte, typ uint16) ([]byte, bool) {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return nil, false
	}
	for _, a := range attrs {
		if a.Attr.Type == typ {
			return a.Value, true
		}
	}
	return nil, false
}
