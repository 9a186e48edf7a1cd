package lvs

import (
	"fmt"
	"math"
)

// MaxWRRCycle bounds the length of a WRRSequence cycle. A cycle has
// Σweight/gcd entries, and a backend without an in-kernel scheduler (an
// nftables map, say) holds one element per entry; weights such as
// 1000,999 would need 1999 of them, 1e6,1 a million. Past this bound, scale
// the weights down instead.
const MaxWRRCycle = 1 << 20

// WRRSequence returns one cycle of the IPVS weighted round-robin scheduler
// for destinations with the given weights, in list order: the i-th new
// connection goes to weights' index seq[i mod len(seq)].
//
// It reproduces net/netfilter/ipvs/ip_vs_wrr.c. With di the gcd of the
// positive weights and mw = max weight − (di − 1), the kernel keeps a current
// weight cw, starting at mw, and a cursor starting at the list head; each
// call returns the next destination after the cursor whose weight is ≥ cw,
// and each time the cursor wraps past the list end it lowers cw by di,
// resetting it to mw once it drops to 0 or below. One cycle is therefore
// mw/di passes over the list with cw = mw, mw−di, …, 1 (the "− (di − 1)"
// makes the last pass cw = 1; since weights are multiples of di, "w ≥ mw −
// k·di" selects exactly the weights ≥ max − k·di). Weight-0 destinations are
// never chosen, as IPVS gives inhibited servers no new connections.
//
// For example weights 3,1 give 0,0,0,1 and weights 4,3,2 give
// 0, 0,1, 0,1,2, 0,1,2: heavier servers take more of every pass, interleaved,
// rather than a block of 4 then 3 then 2. This is the kernel's order from
// the service's creation on. When destinations change later,
// ip_vs_wrr_dest_changed moves the cursor back to the list head but keeps
// cw, so the kernel resumes at the start of its current pass, not of a cycle:
// a table built from this sequence has the kernel's shares and interleaving,
// not necessarily its phase.
//
// It returns an empty sequence if no weight is positive, and an error for a
// weight outside 0..MaxInt32 or a cycle longer than MaxWRRCycle.
func WRRSequence(weights []int) ([]int, error) {
	g, mx, total := 0, 0, 0
	for i, w := range weights {
		if w < 0 || w > math.MaxInt32 {
			return nil, fmt.Errorf("lvs: wrr: weight %d of destination %d: want 0..%d", w, i, math.MaxInt32)
		}
		if w == 0 {
			continue
		}
		g = gcd(g, w)
		mx = max(mx, w)
		total += w
	}
	if mx == 0 {
		return []int{}, nil
	}
	if n := total / g; n > MaxWRRCycle {
		return nil, fmt.Errorf("lvs: wrr: cycle of %d entries exceeds %d; scale the weights down", n, MaxWRRCycle)
	}
	seq := make([]int, 0, total/g)
	for cw := mx - (g - 1); cw > 0; cw -= g {
		for i, w := range weights {
			if w >= cw {
				seq = append(seq, i)
			}
		}
	}
	return seq, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
