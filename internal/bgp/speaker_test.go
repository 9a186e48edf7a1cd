package bgp

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"tandem/internal/clock"
	"tandem/internal/config"
)

// ribCommunities is the communities of p in the speaker's own table
// (nil: p is not there).
func ribCommunities(t *testing.T, sp *Speaker, p netip.Prefix) []uint32 {
	t.Helper()
	var out []uint32
	found := false
	err := sp.s.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL,
		Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}, func(d *api.Destination) {
		if d.Prefix != p.String() {
			return
		}
		for _, path := range d.Paths {
			found = true
			if c, ok := attrsOf(t, path)["CommunitiesAttribute"].(*api.CommunitiesAttribute); ok {
				out = append(out, c.Communities...)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if found && out == nil {
		out = []uint32{}
	}
	return out
}

// TestGracefulShutdownOrder: GracefulShutdown marks every route with
// 65535:0 at once and withdraws them only when graceful_shutdown_delay
// has passed on the speaker's clock. No neighbor: the speaker's own table
// is what it would send.
func TestGracefulShutdownOrder(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	b := &config.BGP{RouterID: netip.MustParseAddr("10.0.0.1"), LocalAS: 65001}
	sp, err := Start(context.Background(), b, slog.New(slog.NewTextHandler(io.Discard, nil)), clk)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx := context.Background()
	vips := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("192.0.2.11/32")}
	for _, p := range vips {
		if err := sp.Announce(ctx, p, Attrs{Communities: []uint32{65001<<16 | 10}}); err != nil {
			t.Fatal(err)
		}
	}
	if c := ribCommunities(t, sp, vips[0]); !slices.Equal(c, []uint32{65001<<16 | 10}) {
		t.Fatalf("before the shutdown: communities %x", c)
	}
	done := make(chan error, 1)
	go func() { done <- sp.GracefulShutdown(ctx, 5*time.Second) }()
	// Wait for the delay's timer: the routes are marked by then.
	for clk.Pending() == 0 {
		select {
		case err := <-done:
			t.Fatalf("returned before the delay: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	for _, p := range vips {
		if c := ribCommunities(t, sp, p); !slices.Equal(c, []uint32{65001<<16 | 10, GracefulShutdownCommunity}) {
			t.Errorf("%s during the delay: communities %x", p, c)
		}
	}
	if got := sp.Announced(); !slices.Equal(got, vips) {
		t.Errorf("announced during the delay: %v", got)
	}
	// A route announced during the delay carries the community too.
	late := netip.MustParsePrefix("192.0.2.12/32")
	if err := sp.Announce(ctx, late, Attrs{}); err != nil {
		t.Fatal(err)
	}
	if c := ribCommunities(t, sp, late); !slices.Equal(c, []uint32{GracefulShutdownCommunity}) {
		t.Errorf("announced during the delay: communities %x", c)
	}
	clk.Advance(4 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("returned 1 s before the delay: %v", err)
	default:
	}
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range append(vips, late) {
		if c := ribCommunities(t, sp, p); c != nil {
			t.Errorf("%s still in the table after the shutdown: %x", p, c)
		}
	}
	if got := sp.Announced(); len(got) != 0 {
		t.Errorf("announced after the shutdown: %v", got)
	}
	// After it (tandem drain --undo), routes carry no 65535:0.
	if err := sp.Announce(ctx, vips[0], Attrs{}); err != nil {
		t.Fatal(err)
	}
	if c := ribCommunities(t, sp, vips[0]); len(c) != 0 {
		t.Errorf("announced after the shutdown: communities %x", c)
	}
}
