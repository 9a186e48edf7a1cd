package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"tandem/internal/lvs"
)

// localKey is the locals map's key of address a.
func localKey(a netip.Addr) lbLocalKey {
	f := lvs.IPv6
	if a.Is4() {
		f = lvs.IPv4
	}
	return lbLocalKey{Addr: addr16(a), Family: uint32(f)}
}

// watchLocals keeps the program's locals map equal to the addresses of
// the namespace New runs in, from the kernel's address notifications
// (those there at start first), until the returned stop: the program
// forwards only packets for an address this host holds, as IPVS does, so
// that a VRRP backup, or a director whose VIP moved, forwards nothing.
func (k *Kernel) watchLocals() (stop func(), err error) {
	ch := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	opts := netlink.AddrSubscribeOptions{ListExisting: true, ErrorCallback: func(err error) {
		k.log.Error("lvs/xdp: address notifications", "err", err)
	}}
	if err := netlink.AddrSubscribeWithOptions(ch, done, opts); err != nil {
		return nil, fmt.Errorf("lvs/xdp: subscribe to address changes: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for u := range ch {
			a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			key := localKey(a.Unmap())
			var err error
			if u.NewAddr {
				err = k.objs.Locals.Put(key, uint8(1))
			} else if err = k.objs.Locals.Delete(key); errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
			if err != nil {
				k.log.Error("lvs/xdp: local addresses", "addr", a, "err", err)
			}
		}
		select {
		case <-done:
		default:
			k.log.Error("lvs/xdp: address notifications ended; VIPs added or removed from now on are not seen until a restart")
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}, nil
}
