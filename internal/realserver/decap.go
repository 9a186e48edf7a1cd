package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"tandem/internal/lvs/xdp"
)

// UpDecap prepares the host as an LVS-TUN real server where the kernel
// cannot decapsulate (UpTun's ErrNoKernelTunnel): Tandem's XDP
// decapsulator (xdp.AttachDecap), pinned in dir on a BPF file system, on
// every interface that is up (but lo), strips IPIP and, for GUE, the
// outer headers to tun.Port, and hands the inner packet to the stack,
// which delivers it to the VIPs, on lo as for DR, with DR's ARP sysctls.
// It records what it changed for DownTun; running it again changes
// nothing more.
func (h Host) UpDecap(vips []netip.Addr, tun Tun, dir string) (ch TunChanges, err error) {
	if err := tun.validate(); err != nil {
		return ch, err
	}
	st, err := h.load(tunKey)
	if err != nil {
		return ch, err
	}
	if len(st.Created)+len(st.Raised)+len(st.Fou) > 0 || (!st.empty() && st.DecapDir != dir) {
		return ch, fmt.Errorf("realserver: %s records another LVS-TUN preparation: run `tandem realserver down --tun` first", h.statePath(tunKey))
	}
	st.DecapDir = dir
	defer func() { err = errors.Join(err, h.save(st)) }()
	var ports []uint16
	if tun.Type == TunGUE {
		ports = []uint16{tun.Port}
	}
	ifcs, err := net.Interfaces()
	if err != nil {
		return ch, err
	}
	for _, ifc := range ifcs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || slices.Contains(st.Decap, ifc.Name) {
			continue
		}
		d, err := xdp.AttachDecap(ifc.Name, ports)
		if err != nil {
			return ch, err
		}
		if err := d.Pin(dir); err != nil {
			return ch, errors.Join(err, d.Close())
		}
		st.Decap = append(st.Decap, ifc.Name)
		ch.Decap = append(ch.Decap, ifc.Name)
		if err := d.Release(); err != nil {
			return ch, err
		}
	}
	if len(st.Decap) == 0 {
		return ch, errors.New("realserver: no interface is up to receive the tunnel's packets")
	}
	if ch.Added, err = addVIPs(&st, vips); err != nil {
		return ch, err
	}
	ch.Sysctls, err = h.setSysctls(&st, []string{"all", "lo"}, wanted)
	return ch, err
}

// detachDecaps removes the decapsulators st records.
func detachDecaps(st State) error {
	var errs []error
	for _, ifname := range st.Decap {
		errs = append(errs, xdp.DetachDecap(st.DecapDir, ifname))
	}
	return errors.Join(errs...)
}

// statusDecap reports, for a host UpDecap prepared, whether each
// decapsulator is still attached, the VIPs on lo and DR's ARP sysctls.
func (h Host) statusDecap(st State, vips []netip.Addr) ([]Check, error) {
	var out []Check
	for _, ifname := range st.Decap {
		on, err := xdp.DecapAttached(st.DecapDir, ifname)
		if err != nil {
			return nil, err
		}
		out = append(out, Check{What: "XDP decapsulator on " + ifname, Have: presence(on), OK: on})
	}
	vc, err := vipChecks(st, vips)
	if err != nil {
		return nil, err
	}
	out = append(out, vc...)
	return append(out, h.sysctlChecks([]string{"all", "lo"}, wanted)...), nil
}
