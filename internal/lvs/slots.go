package lvs

import "fmt"

// MaglevSizes are the Maglev table sizes of a data plane that schedules
// by slot tables (nftables, XDP), smallest first. Each slot is one map
// element sent when the service changes, so the paper's 65537
// (DefaultMaglevSize) would make every weight change a multi-megabyte
// batch. Maglev needs a prime larger than the number of backends; a
// backend's share of the table is then within (1 + N·w/W)/M of its weight
// share (see Maglev), so taking the smallest size ≥ 100 slots per weighted
// backend keeps shares within about 1% (the paper's M ≥ 100·N, §5.3) up to
// 40 backends, at 251 elements for the usual pool of two.
var MaglevSizes = []int{251, 1021, 4093}

// maxWRRSlots bounds a weighted round-robin table. Weights whose IPVS wrr
// cycle (Σw/gcd) is longer are scaled down to a largest weight of
// wrrScaleTo first, which keeps their ratios to within 1/wrrScaleTo.
const (
	maxWRRSlots = 4096
	wrrScaleTo  = 256
)

// Slots returns the slot table of service svc over dests (sorted by
// address) for a data plane without IPVS's in-kernel schedulers: the
// index in dests of the server each slot sends new flows to. A flow picks
// its slot by a hash of the flow (a weighted Maglev table) for DR and the
// hashing schedulers, or else by walking the table in order (round robin;
// NAT only, where conntrack keeps a connection on its server). Dests of
// weight 0 never get
// a slot: they are inhibited, as in IPVS, but stay listed. A table is nil
// when no dest has a positive weight.
//
// The nftables data plane and the XDP one build their DR tables here, so
// that, hashing flows alike, they send every flow to the same server.
//
// How each IPVS scheduler is done:
//
//   - rr, lc: one slot per server of positive weight, walked in turn (NAT)
//     — exactly rr; lc is approximated by rr, which is what least
//     connections converges to for servers that finish connections equally
//     fast. No per-server connection counts are known at schedule time.
//   - wrr, wlc, sed, nq, twos: weighted slots in WRRSequence order, walked
//     in turn (NAT) — exactly IPVS wrr; the connection-count schedulers
//     are approximated by their weight-proportional share, the steady
//     state of wlc for servers of equal speed. Connection counts are not
//     fed back.
//   - fo, ovf: a single slot, the server of highest weight (the first by
//     address among equals). Exactly fo, except that upper thresholds
//     (IP_VS_DEST_F_OVERLOAD) are not enforced; ovf's overflow to the next
//     server when active connections exceed the weight is not done.
//   - sh, mh (saddr, and sport with sh-port/mh-port) and dh, lblc, lblcr
//     (daddr): a weighted Maglev table indexed by a hash of the key. sh/dh
//     become consistent hashing rather than IPVS's modulo table, which
//     moves fewer clients when the pool changes. lblc/lblcr are
//     approximated by dh: they too map a destination to a server, but do
//     not rebalance on load. sh-fallback/mh-fallback are implied: a
//     weight-0 server has no slot, so its clients always go elsewhere.
//   - DR, every scheduler: the same weights, but always hashed: without
//     connection state every packet of a flow must find the same slot.
//     Hence a Maglev table indexed by a hash of client address and port
//     for the non-hashing schedulers, weighted as above (rr, lc: equal
//     weights; fo, ovf: the single top server).
func Slots(svc Service, dests []Dest) ([]int, error) {
	var live []int
	for i, d := range dests {
		if d.Weight > 0 {
			live = append(live, i)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	weights := make([]int, len(live))
	for i, j := range live {
		weights[i] = dests[j].Weight
	}
	switch svc.Scheduler {
	case RoundRobin, LeastConn:
		for i := range weights {
			weights[i] = 1
		}
	case WeightedFailover, WeightedOverflow:
		top := 0
		for i, w := range weights {
			if w > weights[top] {
				top = i
			}
		}
		live, weights = live[top:top+1], []int{1}
	}
	hashed := svc.Method == DR
	switch svc.Scheduler {
	case SourceHash, MaglevHash, DestinationHash, LocalityLeastConn, LocalityLeastConnReplicated:
		hashed = true
	}
	var seq []int
	var err error
	if hashed {
		seq, err = maglevSlots(dests, live, weights)
	} else {
		seq, err = WRRSequence(scaleWeights(weights))
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w", svc.Key(), err)
	}
	for i, j := range seq {
		seq[i] = live[j]
	}
	return seq, nil
}

// maglevSlots is the weighted Maglev table of dests[live[i]] with
// weights[i], as indices into live.
func maglevSlots(dests []Dest, live, weights []int) ([]int, error) {
	size := MaglevSizes[len(MaglevSizes)-1]
	for _, m := range MaglevSizes {
		if m >= 100*len(live) {
			size = m
			break
		}
	}
	if size <= len(live) {
		return nil, fmt.Errorf("%d real servers: a slot-table data plane hashes over at most %d", len(live), size-1)
	}
	bs := make([]MaglevBackend, len(live))
	for i, j := range live {
		bs[i] = MaglevBackend{Addr: dests[j].Addr, Weight: weights[i]}
	}
	return Maglev(bs, size)
}

// scaleWeights returns weights whose wrr cycle fits maxWRRSlots: unchanged
// if it already does, else scaled to a largest weight of wrrScaleTo, each
// positive weight staying at least 1.
func scaleWeights(weights []int) []int {
	g, total, mx := 0, 0, 0
	for _, w := range weights {
		g, total, mx = gcd(g, w), total+w, max(mx, w)
	}
	if total/g <= maxWRRSlots {
		return weights
	}
	out := make([]int, len(weights))
	for i, w := range weights {
		out[i] = max(1, int(int64(w)*wrrScaleTo/int64(mx)))
	}
	return out
}
