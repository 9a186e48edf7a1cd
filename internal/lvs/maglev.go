package lvs

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
)

// DefaultMaglevSize is the lookup-table size the Maglev paper evaluates
// (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, §3.4 and §5.3: M = 65537) and Katran's default ring
// size (kDefaultChRingSize). It is prime, as the permutations need.
const DefaultMaglevSize = 65537

// maxMaglevSize bounds the table so that slot indices and the incremental
// probe arithmetic stay well inside int on every platform.
const maxMaglevSize = 1 << 30

// ErrNoBackends is returned by Maglev when no backend has a positive weight:
// there is nothing to put in the table.
var ErrNoBackends = errors.New("lvs: maglev: no backend with positive weight")

// MaglevBackend is one entry of a Maglev table: a real server and its weight.
type MaglevBackend struct {
	Addr   netip.AddrPort
	Weight int // 0 means the backend gets no slot
}

// IsPrime reports whether n is prime. Maglev table sizes must be: the probe
// sequence offset, offset+skip, offset+2·skip, ... (mod M) visits every slot
// only if gcd(skip, M) = 1 for every skip in 1..M-1 (paper §3.4).
func IsPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d <= n/d; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// Maglev builds a Maglev lookup table of the given size (a prime, larger
// than len(backends), at most 2^30) and returns it: table[slot] is an index
// into backends. A flow goes to backends[table[hash(flow) % size]].
//
// The construction is the paper's population loop (§3.4, Pseudocode 1): each
// backend walks its own permutation of the slots and claims the next free
// one on its turn. Weights follow Katran (facebookincubator/katran,
// lib/MaglevHashV2.cpp): every round each backend adds its weight to a credit
// and takes a turn whenever the credit reaches the largest weight, paying
// that weight back. After R rounds a backend with weight w has had exactly
// ⌊R·w/wmax⌋ turns, and since every turn fills exactly one slot, its share of
// the table differs from size·w/W (W the total weight) by less than
// 1 + N·w/W slots, N the number of weighted backends. Weight-0 backends never
// take a turn and get no slot.
//
// The table depends only on the set of (address, weight) pairs, not on the
// order of backends: turns within a round go in address order, and each
// backend's permutation comes from a fixed hash of its address (see
// maglevPermutation), so every process and restart builds the same table
// (the paper's consistency goal, §3.4). Removing one of N equally weighted
// backends moves its ≈size/N slots plus a few more (paper §5.3, Fig. 13).
//
// Backends must have distinct, valid addresses and weights in 0..MaxInt32.
// It returns ErrNoBackends if no weight is positive.
func Maglev(backends []MaglevBackend, size int) ([]int, error) {
	if !IsPrime(size) || size > maxMaglevSize {
		return nil, fmt.Errorf("lvs: maglev: table size %d is not a prime ≤ 2^30", size)
	}
	if size <= len(backends) {
		return nil, fmt.Errorf("lvs: maglev: table size %d must exceed the %d backends", size, len(backends))
	}
	type walker struct {
		idx    int // into backends
		weight int
		credit int
		pos    int // next slot of the permutation to try
		skip   int
	}
	ws := make([]walker, len(backends))
	for i, b := range backends {
		a := b.Addr.Addr()
		if !b.Addr.IsValid() || a.Zone() != "" || a.Is4In6() {
			return nil, fmt.Errorf("lvs: maglev: backend %d: address %v: want a plain IPv4 or IPv6 address and port", i, b.Addr)
		}
		if b.Weight < 0 || b.Weight > math.MaxInt32 {
			return nil, fmt.Errorf("lvs: maglev: backend %v: weight %d: want 0..%d", b.Addr, b.Weight, math.MaxInt32)
		}
		ws[i] = walker{idx: i, weight: b.Weight}
	}
	slices.SortFunc(ws, func(x, y walker) int { return backends[x.idx].Addr.Compare(backends[y.idx].Addr) })
	for i := 1; i < len(ws); i++ {
		if a := backends[ws[i].idx].Addr; a == backends[ws[i-1].idx].Addr {
			return nil, fmt.Errorf("lvs: maglev: duplicate backend %v", a)
		}
	}
	ws = slices.DeleteFunc(ws, func(w walker) bool { return w.weight == 0 })
	if len(ws) == 0 {
		return nil, ErrNoBackends
	}
	maxWeight := 0
	for i := range ws {
		ws[i].pos, ws[i].skip = maglevPermutation(backends[ws[i].idx].Addr, size)
		maxWeight = max(maxWeight, ws[i].weight)
	}

	table := make([]int, size)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for {
		for i := range ws {
			w := &ws[i]
			w.credit += w.weight
			if w.credit < maxWeight {
				continue
			}
			w.credit -= maxWeight
			// Probe the permutation for a free slot. pos stays in [0,size)
			// and skip < size, so one conditional subtraction replaces the
			// paper's (offset + j·skip) mod M.
			for table[w.pos] >= 0 {
				if w.pos += w.skip; w.pos >= size {
					w.pos -= size
				}
			}
			table[w.pos] = w.idx
			if w.pos += w.skip; w.pos >= size {
				w.pos -= size
			}
			if filled++; filled == size {
				return table, nil
			}
		}
	}
}

// maglevPermutation returns where backend a's permutation of 0..size-1
// starts and its stride, as in the paper (§3.4): offset = h1(name) mod M and
// skip = h2(name) mod (M-1) + 1, Katran's construction too
// (lib/MaglevBase.cpp, with MurmurHash3 where we use the below).
//
// The name is the canonical "addr:port" text (netip.AddrPort.AppendTo, as
// String formats it: "10.0.0.1:80", "[2001:db8::1]:443"), so it
// does not depend on how the configuration spelled the address. h1 and h2
// must be stable across processes, architectures and Go releases, which rules
// out hash/maphash (randomly seeded per process): we take 64-bit FNV-1a (a
// fixed specification) of the name and pass it through the SplitMix64
// finalizer under two different seeds, which spreads FNV's weak low bits for
// names that differ in one character. TestMaglevGolden pins the output.
func maglevPermutation(a netip.AddrPort, size int) (offset, skip int) {
	var buf [64]byte // "[ipv6]:port" is at most 47 bytes
	sum := uint64(fnvOffset64)
	for _, c := range a.AppendTo(buf[:0]) {
		sum = (sum ^ uint64(c)) * fnvPrime64
	}
	m := uint64(size)
	offset = int(splitmix64(sum^0x6f66667365742121) % m) // seeds: any two distinct constants
	skip = int(splitmix64(sum^0x736b697073746570)%(m-1)) + 1
	return offset, skip
}

// FNV-1a 64-bit parameters (Fowler, Noll, Vo; also in hash/fnv, which we
// inline so hashing a backend does not allocate).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// splitmix64 is the output function of Steele, Lea and Flood's SplitMix64
// generator (OOPSLA 2014), a bijective 64-bit mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
