package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/api"
	"tandem/internal/lab"
)

const (
	// pollEvery is the period of the status polls and of the kernel
	// samples.
	pollEvery = 20 * time.Millisecond
	// fetchTimeout bounds one status request; a paused daemon never
	// answers.
	fetchTimeout = 300 * time.Millisecond
	// fresh is how old a status report may be and still count: a judged
	// sample is at most this much behind the daemon.
	fresh = 150 * time.Millisecond
)

// draining marks the state of an instance that is draining its
// addresses (make-before-break, docs/handover.md): no longer master, it
// still holds them, silenced, for handover_drain.
const draining = " (draining)"

// statusPoller keeps the latest status report of one director.
type statusPoller struct {
	mu     sync.Mutex
	at     time.Time
	states map[string]string
}

func (p *statusPoller) run(ctx context.Context, socket string) {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		st, err := api.Fetch(fctx, socket)
		cancel()
		if err == nil {
			m := map[string]string{}
			for _, in := range st.Instances {
				m[in.Name] = in.State
				if !in.DrainingUntil.IsZero() {
					m[in.Name] += draining
				}
			}
			p.mu.Lock()
			p.at, p.states = time.Now(), m
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
		}
	}
}

// latest is the last report if it is fresh at now, else nil.
func (p *statusPoller) latest(now time.Time) map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.at) > fresh {
		return nil
	}
	return p.states
}

// kernelProbe reads one director's addresses, routes and rules over
// netlink inside its namespace.
type kernelProbe struct {
	h     *netlink.Handle
	ns    netns.NsHandle
	insts []vrrpInst
}

func newKernelProbe(l *lab.Lab, node string, insts []vrrpInst) (*kernelProbe, error) {
	ns, err := netns.GetFromPath(filepath.Join("/run/netns", l.NSName(node)))
	if err != nil {
		return nil, fmt.Errorf("%s: open namespace: %w", node, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("%s: netlink: %w", node, err)
	}
	return &kernelProbe{h: h, ns: ns, insts: insts}, nil
}

func (k *kernelProbe) close() {
	k.h.Close()
	k.ns.Close()
}

// mac is the director's MAC on the lab segment.
func (k *kernelProbe) mac() (string, error) {
	link, err := k.h.LinkByName(iface)
	if err != nil {
		return "", err
	}
	return link.Attrs().HardwareAddr.String(), nil
}

// read returns, per instance name, what the kernel holds of it.
func (k *kernelProbe) read() (map[string]holdings, error) {
	addrs, err := k.h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	routes, err := k.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	rules, err := k.h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out := map[string]holdings{}
	for _, in := range k.insts {
		var h holdings
		for _, a := range addrs {
			h.vip = h.vip || addrOf(a.IP) == in.vip
		}
		for _, r := range routes {
			h.route = h.route || (r.Dst != nil && prefixOf(r.Dst) == in.route)
		}
		for _, r := range rules {
			h.rule = h.rule || (r.Src != nil && r.Table == in.table && prefixOf(r.Src) == netip.PrefixFrom(in.vip, 32))
		}
		out[in.name] = h
	}
	return out, nil
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func prefixOf(n *net.IPNet) netip.Prefix {
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(addrOf(n.IP), bits)
}
