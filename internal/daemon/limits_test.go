package daemon

import "testing"

// TestConnCap: an eighth of the limit, at most the most, at least one.
func TestConnCap(t *testing.T) {
	for _, c := range []struct {
		limit uint64
		most  int
		want  int
	}{{1024, maxHTTPConns, 128}, {1 << 20, maxHTTPConns, maxHTTPConns}, {1024, maxSocketConns, maxSocketConns}, {4, maxSocketConns, 1}} {
		if got := connCap(c.limit, c.most); got != c.want {
			t.Errorf("connCap(%d, %d) = %d, want %d", c.limit, c.most, got, c.want)
		}
	}
}
