package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Handover makes the named instances (every instance that is MASTER here,
// when names is empty) hand their mastership over, make-before-break (see
// the Handover event). With to set, the priority 0 advert goes to that
// unicast peer alone, so that it takes over after its Skew_Time while the
// other backups still wait out their Master_Down_Interval: plain VRRP
// lets no one pick the next master otherwise (every backup hears a
// multicast advert, and the highest priority wins), so to needs the
// instances' unicast_peer lists to hold it. Nothing is done unless every
// named instance can hand over; the error says why not. It returns the
// instances that handed over, and must be called while Run runs.
func (e *Engine) Handover(names []string, to netip.Addr) ([]string, error) {
	type result struct {
		done []string
		err  error
	}
	ch := make(chan result, 1)
	call := func() {
		done, err := e.handover(names, to)
		ch <- result{done, err}
	}
	e.send(loopEvent{call: call})
	select {
	case r := <-ch:
		return r.done, r.err
	case <-e.done:
		return nil, errStopped
	}
}

// handover runs in the loop.
func (e *Engine) handover(names []string, to netip.Addr) ([]string, error) {
	var pick []*instance
	if len(names) == 0 {
		for _, in := range e.insts {
			if in.m.State() == Master && in.group == nil {
				pick = append(pick, in)
			}
		}
		if len(pick) == 0 {
			return nil, fmt.Errorf("no instance outside a sync group is MASTER here")
		}
	}
	for _, name := range names {
		i := slices.IndexFunc(e.insts, func(in *instance) bool { return in.cfg.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("no vrrp_instance %s runs here", name)
		}
		in := e.insts[i]
		switch {
		case in.m.State() != Master:
			return nil, fmt.Errorf("vrrp_instance %s is %s: only a master hands over", name, in.m.State())
		case in.group != nil:
			// Its group would force the other members to BACKUP with
			// no priority 0 advert, and the peer group would take them
			// only after Master_Down_Interval.
			return nil, fmt.Errorf("vrrp_instance %s is in sync group %s: handing over a sync group is not supported", name, in.group.cfg.Name)
		}
		pick = append(pick, in)
	}
	if to.IsValid() {
		for _, in := range pick {
			if !in.recv.Unicast || !slices.Contains(in.conn.Dests(), to) {
				return nil, fmt.Errorf("vrrp_instance %s: --to %s needs %s in its unicast_peer list: with multicast adverts every backup hears the priority 0 advert and VRRP makes the highest priority one master", in.cfg.Name, to, to)
			}
		}
	}
	var done []string
	for _, in := range pick {
		e.handle(in, Handover{To: to})
		done = append(done, in.cfg.Name)
	}
	e.log.Info("handover requested", "instances", strings.Join(done, ", "), "to", to)
	return done, nil
}
