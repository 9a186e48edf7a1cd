package xdp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf/link"
)

// Decap is the decapsulation program of bpf/xdp_decap.c attached to one
// interface, for an LVS-TUN real server whose kernel cannot decapsulate
// (no ipip or fou module): it strips the outer IPv4 or IPv6 header of
// IP-in-IP packets, and the outer IP, UDP and GUE headers of packets to
// one of its GUE ports, and hands the inner packet to the stack, which
// delivers it to the VIP the server holds (on lo, as for DR). Other
// packets pass untouched. It does not check the outer destination
// address, nor the outer UDP checksum: whatever tunnel packet reaches
// the interface is taken, as a kernel tunnel bound to any local address
// takes it.
type Decap struct {
	objs decapObjects
	link link.Link
	pin  string // where the link is pinned, "" if not
}

// AttachDecap attaches the decapsulation program to interface ifname of
// the network namespace of the calling thread (native XDP where the
// driver can, generic otherwise), receiving GUE on guePorts (none: IPIP
// only). It lasts until Close, or, once pinned (Pin), until DetachDecap
// or the interface goes.
func AttachDecap(ifname string, guePorts []uint16) (*Decap, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lvs/xdp: decap: %w", err)
	}
	d := &Decap{}
	if err := loadDecapObjects(&d.objs, nil); err != nil {
		return nil, fmt.Errorf("lvs/xdp: decap: load: %w", err)
	}
	for _, p := range guePorts {
		if p == 0 {
			d.objs.Close()
			return nil, errors.New("lvs/xdp: decap: GUE port 0")
		}
		if err := d.objs.GuePorts.Put(htons(p), uint8(1)); err != nil {
			d.objs.Close()
			return nil, fmt.Errorf("lvs/xdp: decap: GUE port %d: %w", p, err)
		}
	}
	d.link, err = link.AttachXDP(link.XDPOptions{Program: d.objs.XdpDecap, Interface: ifc.Index, Flags: link.XDPDriverMode})
	if err != nil {
		var gerr error
		if d.link, gerr = link.AttachXDP(link.XDPOptions{Program: d.objs.XdpDecap, Interface: ifc.Index, Flags: link.XDPGenericMode}); gerr != nil {
			d.objs.Close()
			return nil, fmt.Errorf("lvs/xdp: decap: attach to %s: native: %v; generic: %w", ifname, err, gerr)
		}
	}
	return d, nil
}

// decapPin is where Pin pins the attachment to interface ifindex of the
// calling thread's network namespace, in dir.
func decapPin(dir string, ifindex int) (string, error) {
	ns, err := netnsInode()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("decap-%s-%d", ns, ifindex)), nil
}

// Pin pins the attachment in dir, on a BPF file system (DefaultPinDir,
// say), so that it outlives this process: `tandem realserver up` exits
// once the host is prepared. Call it from the namespace AttachDecap ran
// in.
func (d *Decap) Pin(dir string) error {
	info, err := d.link.Info()
	if err != nil {
		return fmt.Errorf("lvs/xdp: decap: %w", err)
	}
	p, err := decapPin(dir, int(info.XDP().Ifindex))
	if err != nil {
		return err
	}
	err = os.MkdirAll(dir, 0o700)
	if err == nil {
		err = d.link.Pin(p)
	}
	if err != nil {
		return fmt.Errorf("lvs/xdp: decap: pin in %s: %w (is a BPF file system mounted there? mount -t bpf bpf /sys/fs/bpf)", dir, err)
	}
	d.pin = p
	return nil
}

// Release lets go of a pinned attachment without detaching it: it stays
// until DetachDecap.
func (d *Decap) Release() error {
	if d.pin == "" {
		return errors.New("lvs/xdp: decap: Release of an attachment not pinned (Close detaches it)")
	}
	return errors.Join(d.link.Close(), d.objs.Close())
}

// Close detaches the program and removes its pin, if any.
func (d *Decap) Close() error {
	var errs []error
	if d.pin != "" {
		errs = append(errs, d.link.Unpin())
	}
	errs = append(errs, d.link.Close(), d.objs.Close())
	return errors.Join(errs...)
}

// DetachDecap detaches the decapsulation program that AttachDecap and
// Pin(dir) left on interface ifname of the calling thread's network
// namespace; none there is no error.
func DetachDecap(dir, ifname string) error {
	l, err := pinnedDecap(dir, ifname)
	if l == nil || err != nil {
		return err
	}
	return errors.Join(l.Unpin(), l.Close())
}

// DecapAttached reports whether the decapsulator Pin(dir) left on
// interface ifname of the calling thread's network namespace is still
// there.
func DecapAttached(dir, ifname string) (bool, error) {
	l, err := pinnedDecap(dir, ifname)
	if l == nil || err != nil {
		return false, err
	}
	return true, l.Close()
}

// pinnedDecap loads the attachment Pin(dir) left on ifname, nil if none.
func pinnedDecap(dir, ifname string) (link.Link, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lvs/xdp: decap: %w", err)
	}
	p, err := decapPin(dir, ifc.Index)
	if err != nil {
		return nil, err
	}
	l, err := link.LoadPinnedLink(p, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lvs/xdp: decap: %w", err)
	}
	return l, nil
}
