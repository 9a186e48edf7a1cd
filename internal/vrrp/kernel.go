package vrrp

import (
	"fmt"
	"net/netip"
	"sync"

	"tandem/internal/config"
	"tandem/internal/netio"
)

// Host is the Kernel of the machine (or network namespace) the process runs
// in, through netio.
type Host struct {
	mu         sync.Mutex
	announcers map[string]*netio.Announcer
	// rpFilter is what the first IPv4 VMAC changed of
	// net.ipv4.conf.*.rp_filter, put back at Close; rpCleared says that
	// was done.
	rpFilter  *netio.RPFilter
	rpCleared bool
}

// NewHost returns the host kernel.
func NewHost() *Host { return &Host{announcers: map[string]*netio.Announcer{}} }

// Listen opens a VRRP socket.
func (h *Host) Listen(cfg netio.ConnConfig) (Conn, error) {
	c, err := netio.Listen(cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AddAddress adds a virtual address.
func (h *Host) AddAddress(iface string, a *config.IPAddress) error { return netio.AddAddress(iface, a) }

// DelAddress removes a virtual address.
func (h *Host) DelAddress(iface string, a *config.IPAddress) error { return netio.DelAddress(iface, a) }

// AddRoute adds a virtual route.
func (h *Host) AddRoute(iface string, r *config.Route) error { return netio.AddRoute(iface, r) }

// DelRoute removes a virtual route.
func (h *Host) DelRoute(iface string, r *config.Route) error { return netio.DelRoute(iface, r) }

// AddRule adds a virtual rule.
func (h *Host) AddRule(r *config.Rule) error { return netio.AddRule(r) }

// DelRule removes a virtual rule.
func (h *Host) DelRule(r *config.Rule) error { return netio.DelRule(r) }

// SetPromoteSecondaries sets the interface's promote_secondaries sysctl
// and reports its previous value.
func (h *Host) SetPromoteSecondaries(iface string, on bool) (bool, error) {
	return netio.SetPromoteSecondaries(iface, on)
}

// Announce sends a gratuitous ARP or unsolicited NA for a on iface, keeping
// one announcer (and its sockets) per interface.
func (h *Host) Announce(iface string, a netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	an, ok := h.announcers[iface]
	if !ok {
		var err error
		if an, err = netio.NewAnnouncer(iface); err != nil {
			return err
		}
		h.announcers[iface] = an
	}
	return an.Announce(a)
}

// Silence keeps the host from answering for addrs (netio.Silence).
func (h *Host) Silence(addrs []netip.Addr) error { return netio.Silence(addrs) }

// AddVMAC creates (or adopts) a use_vmac macvlan or use_ipvlan ipvlan;
// the first IPv4 macvlan clears net.ipv4.conf.all.rp_filter as keepalived does (ClearRPFilter).
func (h *Host) AddVMAC(v netio.VMAC) error {
	h.mu.Lock()
	// An ipvlan has an address of its own: keepalived leaves rp_filter.
	if !v.IPv6 && !v.IPVLAN && !h.rpCleared {
		rp, err := netio.ClearRPFilter()
		h.rpFilter, h.rpCleared = rp, err == nil
		if err != nil {
			h.mu.Unlock()
			return fmt.Errorf("vmac %s: rp_filter: %w", v.Name, err)
		}
	}
	if h.rpFilter != nil {
		v.AllRPFilter = h.rpFilter.All()
	}
	h.mu.Unlock()
	return netio.AddVMAC(v)
}

// DelVMAC removes a use_vmac macvlan Tandem created, and its announcer,
// which holds the link's index.
func (h *Host) DelVMAC(name string) error {
	h.mu.Lock()
	if an, ok := h.announcers[name]; ok {
		an.Close()
		delete(h.announcers, name)
	}
	h.mu.Unlock()
	return netio.DelVMAC(name)
}

// StaleVMACs lists the macvlans Tandem created that keep does not name.
func (h *Host) StaleVMACs(keep map[string]bool) ([]string, error) { return netio.StaleVMACs(keep) }

// Close releases the announcers' sockets and puts back the rp_filter
// settings the VMACs needed changed.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, an := range h.announcers {
		an.Close()
		delete(h.announcers, name)
	}
	if h.rpFilter != nil {
		rp := h.rpFilter
		h.rpFilter, h.rpCleared = nil, false
		if err := rp.Restore(); err != nil {
			return fmt.Errorf("restore rp_filter: %w", err)
		}
	}
	return nil
}
