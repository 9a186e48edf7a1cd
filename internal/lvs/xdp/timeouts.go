package xdp

import (
	"fmt"

	"tandem/internal/lvs"
)

// SetTimeouts makes t (keepalived's lvs_timeouts) the idle timeouts of
// the flow table's entries, as IPVS applies them to its connections: tcp
// for TCP flows, udp for UDP ones, a zero one being IPVS's default
// (flowTimeout); a service with persistence keeps its persistence_timeout.
// The services already programmed change in place, adopted ones included
// (they may have a previous run's): the timeout is read by the program at
// each packet, so an entry's age is measured against the new one from
// then on. The program does not follow TCP's state, so t's
// TCPFin has no counterpart here: a closed connection's entry keeps the
// tcp timeout.
func (k *Kernel) SetTimeouts(t lvs.Timeouts) error {
	for key, s := range k.state {
		sk := svcKey(key)
		var cur lbSvcVal
		if err := k.objs.Services.Lookup(sk, &cur); err != nil {
			return fmt.Errorf("lvs/xdp: service %v: %w", key, err)
		}
		if err := k.objs.Services.Put(sk, svcVal(s, cur.Size, t)); err != nil {
			return fmt.Errorf("lvs/xdp: service %v: flow timeout: %w", key, err)
		}
	}
	k.timeouts = t
	return nil
}
