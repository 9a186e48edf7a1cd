package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// localKey is the locals map's key of address a.
func localKey(a netip.Addr) lbLocalKey {
	return lbLocalKey{Addr: addr16(a), Family: uint32(familyOf(a))}
}

// watchLocals keeps the program's locals map equal to the addresses of
// the namespace New runs in, from the kernel's address notifications,
// until the returned stop: the program forwards only packets for an
// address this host holds, as IPVS does, so that a VRRP backup, or a
// director whose VIP moved, forwards nothing. The addresses there are in
// the map when it returns, before the program runs with it (a packet for
// a VIP missing from the map would go to the director's own stack, which
// resets the connection).
func (k *Kernel) watchLocals() (stop func(), err error) {
	ch := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	var stopping atomic.Bool // closing the socket makes its reader fail
	opts := netlink.AddrSubscribeOptions{ErrorCallback: func(err error) {
		if !stopping.Load() {
			k.log.Error("lvs/xdp: address notifications", "err", err)
		}
	}}
	// Subscribed first, listed second: a change in between is both in
	// the list and queued, and applying it again changes nothing.
	if err := netlink.AddrSubscribeWithOptions(ch, done, opts); err != nil {
		return nil, fmt.Errorf("lvs/xdp: subscribe to address changes: %w", err)
	}
	stop = func() {
		stopping.Store(true)
		close(done)
		for range ch {
		}
	}
	addrs, err := k.route.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		stop()
		return nil, fmt.Errorf("lvs/xdp: list addresses: %w", err)
	}
	for _, a := range addrs {
		if err := k.setLocal(a.IP, true); err != nil {
			stop()
			return nil, err
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for u := range ch {
			if err := k.setLocal(u.LinkAddress.IP, u.NewAddr); err != nil {
				k.log.Error("lvs/xdp: local addresses", "err", err)
			}
		}
		if !stopping.Load() {
			k.log.Error("lvs/xdp: address notifications ended; VIPs added or removed from now on are not seen until a restart")
		}
	}()
	return func() {
		stopping.Store(true)
		close(done)
		wg.Wait()
	}, nil
}

// setLocal adds address ip to the locals map, or with held false deletes it.
func (k *Kernel) setLocal(ip net.IP, held bool) error {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return nil
	}
	a = a.Unmap()
	key := localKey(a)
	var err error
	if held {
		err = k.objs.Locals.Put(key, uint8(1))
	} else if err = k.objs.Locals.Delete(key); errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("lvs/xdp: local address %v: %w", a, err)
	}
	return nil
}
