package nft

import (
	"fmt"

	"tandem/internal/lvs"
)

// maglevSizes are the Maglev table sizes a service may use, smallest first.
// Each slot is one element of an nftables verdict map, sent in the
// service's rebuild transaction, so the paper's 65537 (lvs.DefaultMaglevSize)
// would make every weight change a multi-megabyte netlink batch. Maglev
// needs a prime larger than the number of backends; a backend's share of
// the table is then within (1 + N·w/W)/M of its weight share (see
// lvs.Maglev), so taking the smallest size ≥ 100 slots per weighted
// backend keeps shares within about 1% (the paper's M ≥ 100·N, §5.3) up to
// 40 backends, at 251 elements for the usual pool of two.
var maglevSizes = []int{251, 1021, 4093}

// maxWRRSlots bounds a weighted round-robin table. Weights whose IPVS wrr
// cycle (Σw/gcd) is longer are scaled down to a largest weight of
// wrrScaleTo first, which keeps their ratios to within 1/wrrScaleTo.
const (
	maxWRRSlots = 4096
	wrrScaleTo  = 256
)

// slots returns the slot table of s: the dest id each slot sends new flows
// to (ds sorted by address). Dests of weight 0 never get a slot: they are
// inhibited, as in IPVS, but stay listed.
//
// How each IPVS scheduler is done:
//
//   - rr, lc: one slot per server of positive weight, walked by numgen
//     (NAT) — exactly rr; lc is approximated by rr, which is what least
//     connections converges to for servers that finish connections equally
//     fast. nftables has no per-server connection counts at schedule time.
//   - wrr, wlc, sed, nq, twos: weighted slots in lvs.WRRSequence order,
//     walked by numgen (NAT) — exactly IPVS wrr; the connection-count
//     schedulers are approximated by their weight-proportional share, the
//     steady state of wlc for servers of equal speed. Connection counts are
//     not fed back.
//   - fo, ovf: a single slot, the server of highest weight (the first by
//     address among equals). Exactly fo, except that upper thresholds
//     (IP_VS_DEST_F_OVERLOAD) are not enforced; ovf's overflow to the next
//     server when active connections exceed the weight is not done.
//   - sh, mh (saddr, and sport with sh-port/mh-port) and dh, lblc, lblcr
//     (daddr): a weighted Maglev table indexed by jhash of the key. sh/dh
//     become consistent hashing rather than IPVS's modulo table, which moves
//     fewer clients when the pool changes. lblc/lblcr are approximated by
//     dh: they too map a destination to a server, but do not rebalance
//     on load. sh-fallback/mh-fallback are implied: a weight-0 server has
//     no slot, so its clients always go elsewhere.
//   - DR, every scheduler: the same tables, but never numgen: the netdev
//     ingress hook has no conntrack, so every packet of a flow must find the same slot.
//     Hence a Maglev table indexed by jhash(saddr . sport) for the
//     non-hashing schedulers, weighted as above (rr, lc: equal weights;
//     fo, ovf: the single top server).
func slots(s *service, ds []dest) ([]uint32, error) {
	var live []dest
	for _, d := range ds {
		if d.Weight > 0 {
			live = append(live, d)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	weights := make([]int, len(live))
	for i, d := range live {
		weights[i] = d.Weight
	}
	hashed := s.Method == lvs.DR
	switch s.Scheduler {
	case lvs.RoundRobin, lvs.LeastConn:
		for i := range weights {
			weights[i] = 1
		}
	case lvs.WeightedFailover, lvs.WeightedOverflow:
		top := 0
		for i, w := range weights {
			if w > weights[top] {
				top = i
			}
		}
		live, weights = live[top:top+1], []int{1}
	case lvs.SourceHash, lvs.MaglevHash, lvs.DestinationHash, lvs.LocalityLeastConn, lvs.LocalityLeastConnReplicated:
		hashed = true
	}
	if hashed {
		return maglevSlots(s, live, weights)
	}
	weights = scaleWeights(weights)
	seq, err := lvs.WRRSequence(weights)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", s.Key(), err)
	}
	out := make([]uint32, len(seq))
	for i, j := range seq {
		out[i] = live[j].id
	}
	return out, nil
}

func maglevSlots(s *service, live []dest, weights []int) ([]uint32, error) {
	size := maglevSizes[len(maglevSizes)-1]
	for _, m := range maglevSizes {
		if m >= 100*len(live) {
			size = m
			break
		}
	}
	if size <= len(live) {
		return nil, fmt.Errorf("%v: %d real servers: the nftables backend hashes over at most %d", s.Key(), len(live), size-1)
	}
	bs := make([]lvs.MaglevBackend, len(live))
	for i, d := range live {
		bs[i] = lvs.MaglevBackend{Addr: d.Addr, Weight: weights[i]}
	}
	table, err := lvs.Maglev(bs, size)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", s.Key(), err)
	}
	out := make([]uint32, len(table))
	for i, j := range table {
		out[i] = live[j].id
	}
	return out, nil
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

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
