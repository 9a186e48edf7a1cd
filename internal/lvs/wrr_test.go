package lvs

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// TestWRRSequence checks sequences worked out by hand from
// net/netfilter/ipvs/ip_vs_wrr.c: di = gcd of the positive weights,
// mw = max − (di − 1), then passes with cw = mw, mw − di, … while cw > 0,
// each pass taking, in list order, every destination with weight ≥ cw.
func TestWRRSequence(t *testing.T) {
	tests := []struct {
		weights []int
		want    []int
		why     string
	}{
		{[]int{3, 1}, []int{0, 0, 0, 1}, "mw=3: cw=3 {0}, cw=2 {0}, cw=1 {0,1}"},
		{[]int{1, 3}, []int{1, 1, 0, 1}, "list order, not weight order: cw=3 {1}, cw=2 {1}, cw=1 {0,1}"},
		{[]int{4, 3, 2}, []int{0, 0, 1, 0, 1, 2, 0, 1, 2}, "cw=4 {0}, 3 {0,1}, 2 {0,1,2}, 1 {0,1,2}"},
		{[]int{2, 3, 5}, []int{2, 2, 1, 2, 0, 1, 2, 0, 1, 2}, "cw=5 {2}, 4 {2}, 3 {1,2}, 2 {0,1,2}, 1 {0,1,2}"},
		{[]int{1, 1, 1}, []int{0, 1, 2}, "plain round-robin: one pass at cw=1"},
		{[]int{4, 2}, []int{0, 0, 1}, "di=2, mw=4−1=3: cw=3 {0}, cw=1 {0,1}"},
		{[]int{6, 4, 2}, []int{0, 0, 1, 0, 1, 2}, "di=2, mw=5: cw=5 {0}, 3 {0,1}, 1 {0,1,2}"},
		{[]int{5}, []int{0}, "di=5, mw=1: a single pass, a single entry"},
		{[]int{0, 2, 0, 1}, []int{1, 1, 3}, "weight 0 is never chosen: cw=2 {1}, cw=1 {1,3}"},
		{[]int{0, 0}, []int{}, "mw=0: the kernel reports no destination available"},
		{nil, []int{}, "no destinations"},
	}
	for _, tc := range tests {
		got, err := WRRSequence(tc.weights)
		if err != nil {
			t.Errorf("WRRSequence(%v): %v", tc.weights, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("WRRSequence(%v) (%s) (-want +got):\n%s", tc.weights, tc.why, diff)
		}
	}
}

func TestWRRSequenceErrors(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		wantErr string
	}{
		{[]int{1, -1}, "weight -1 of destination 1"},
		{[]int{1 << 31}, "weight 2147483648"},
		{[]int{MaxWRRCycle, 1}, "cycle of 1048577 entries exceeds 1048576"},
	} {
		_, err := WRRSequence(tc.weights)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("WRRSequence(%v): err = %v, want it to contain %q", tc.weights, err, tc.wantErr)
		}
	}
	// A huge weight is fine when the gcd makes the cycle short.
	if got, err := WRRSequence([]int{1 << 30, 1 << 29}); err != nil || !slices.Equal(got, []int{0, 0, 1}) {
		t.Errorf("WRRSequence(2^30, 2^29) = %v, %v; want [0 0 1]", got, err)
	}
}

// kernelWRR simulates ip_vs_wrr_schedule call by call: the list cursor
// (-1 is the list head), the current weight and the wrap-around with its
// last-pass bookkeeping (IP_VS_DEST_F_OVERLOAD is not modelled: no server is
// overloaded). It is an independent oracle for WRRSequence, which
// computes whole passes instead.
type kernelWRR struct {
	w      []int
	cl, cw int
	mw, di int
}

func newKernelWRR(w []int) *kernelWRR {
	k := &kernelWRR{w: w, cl: -1}
	for _, x := range w {
		if x > 0 {
			k.di = gcd(k.di, x)
		}
		k.mw = max(k.mw, x)
	}
	if k.di == 0 {
		k.di = 1
	}
	k.mw -= k.di - 1
	k.cw = k.mw
	return k
}

// schedule returns the chosen index, or -1 for "no destination available".
func (k *kernelWRR) schedule() int {
	if k.mw == 0 {
		return -1
	}
	dest, last, stop := k.cl, k.cl, -2
	lastPass, restarted := false, false
	for {
		for dest++; dest < len(k.w); dest++ {
			if k.w[dest] >= k.cw {
				k.cl = dest
				return dest
			}
			if dest == stop {
				k.cl = dest
				return -1
			}
		}
		dest = -1 // list_for_each_entry_continue ended on the head
		k.cw -= k.di
		if k.cw <= 0 {
			k.cw = k.mw
			if lastPass || last == -1 {
				k.cl = dest
				return -1
			}
			restarted = true
		}
		lastPass = k.cw <= k.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}

func TestWRRSequenceMatchesKernel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		weights := rapid.SliceOfN(rapid.IntRange(0, 12), 0, 8).Draw(t, "weights")
		seq, err := WRRSequence(weights)
		if err != nil {
			t.Fatal(err)
		}
		k := newKernelWRR(weights)
		if len(seq) == 0 {
			if got := k.schedule(); got != -1 {
				t.Fatalf("kernel chose %d, WRRSequence is empty", got)
			}
			return
		}
		// Three cycles: the kernel's steady state repeats the first cycle.
		for c := range 3 {
			for i, want := range seq {
				if got := k.schedule(); got != want {
					t.Fatalf("cycle %d call %d: kernel chose %d, WRRSequence has %d (seq %v)", c, i, got, want, seq)
				}
			}
		}
		// Each destination appears weight/gcd times.
		g := 0
		for _, w := range weights {
			g = gcd(g, w)
		}
		for i, w := range weights {
			if got := countOf(seq, i); got != w/g {
				t.Fatalf("destination %d (weight %d) appears %d times, want %d", i, w, got, w/g)
			}
		}
	})
}

func countOf(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
