package api

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// bgpSpeaker is a speaker with one established session and one that
// failed, one VIP announced and one withdrawn.
func bgpSpeaker() *BGPStatus {
	return &BGPStatus{RouterID: "10.0.0.1", LocalAS: 65001,
		Neighbors: []BGPNeighborStatus{
			{Address: "10.0.0.254", RemoteAS: 65000, State: "established", Since: statusT0.Add(5 * time.Second), PrefixesSent: 1},
			{Address: "10.0.0.253", RemoteAS: 65000, State: "active", LastError: "failed to connect: connection refused"},
		},
		VIPs: []BGPVIPStatus{{VIP: "192.0.2.10", Announced: true}, {VIP: "192.0.2.11"}}}
}

// TestMetricsBGP: every session's state and prefixes, every VIP's route,
// and no BGP series without a speaker.
func TestMetricsBGP(t *testing.T) {
	src := testSource()
	src.set(func(st *Status) { st.BGP = nil })
	names := []string{"tandem_bgp_session_up", "tandem_bgp_prefixes_sent", "tandem_bgp_prefixes_received", "tandem_bgp_vip_announced"}
	if n := testutil.CollectAndCount(statusCollector{src}, names...); n != 0 {
		t.Errorf("%d BGP series without a speaker, want 0", n)
	}
	src.set(func(st *Status) { st.BGP = bgpSpeaker() })
	want := `
# HELP tandem_bgp_prefixes_received Prefixes learned from the router on the BGP session.
# TYPE tandem_bgp_prefixes_received gauge
tandem_bgp_prefixes_received{neighbor="10.0.0.253"} 0
tandem_bgp_prefixes_received{neighbor="10.0.0.254"} 0
# HELP tandem_bgp_prefixes_sent Prefixes advertised to the router on the BGP session.
# TYPE tandem_bgp_prefixes_sent gauge
tandem_bgp_prefixes_sent{neighbor="10.0.0.253"} 0
tandem_bgp_prefixes_sent{neighbor="10.0.0.254"} 1
# HELP tandem_bgp_session_up 1 if the BGP session to the router is established, else 0.
# TYPE tandem_bgp_session_up gauge
tandem_bgp_session_up{neighbor="10.0.0.253",remote_as="65000"} 0
tandem_bgp_session_up{neighbor="10.0.0.254",remote_as="65000"} 1
# HELP tandem_bgp_vip_announced 1 if the VIP's host route is announced over BGP, 0 if withdrawn (no quorum, or not in the data plane).
# TYPE tandem_bgp_vip_announced gauge
tandem_bgp_vip_announced{vip="192.0.2.10"} 1
tandem_bgp_vip_announced{vip="192.0.2.11"} 0
`
	if err := testutil.CollectAndCompare(statusCollector{src}, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// TestWriteTextBGP: tandem status prints the speaker, its sessions and
// its VIPs.
func TestWriteTextBGP(t *testing.T) {
	var b strings.Builder
	st := bgpSpeaker()
	st.ShuttingDown = true
	if err := WriteText(&b, Status{BGP: st}, statusT0.Add(65*time.Second)); err != nil {
		t.Fatal(err)
	}
	want := `
BGP: router id 10.0.0.1, AS 65001, graceful shutdown
BGP NEIGHBOR  AS     STATE        SINCE  SENT/RECEIVED  LAST ERROR
10.0.0.254    65000  established  1m0s   1/0            -
10.0.0.253    65000  active       -      0/0            failed to connect: connection refused
VIP           ROUTE
192.0.2.10    announced
192.0.2.11    withdrawn
`
	if got := b.String(); got != want {
		t.Errorf("WriteText:\n%s\nwant\n%s", got, want)
	}
}

// TestPageBGP: the status page has a row per session and per VIP, the
// sessions not established and the VIPs withdrawn marked; without a
// speaker there is no section.
func TestPageBGP(t *testing.T) {
	page := sectionPage(t, "BGP", func(st *Status) { st.BGP = nil }, func(st *Status) { st.BGP = bgpSpeaker() })
	for _, c := range []struct {
		class string
		want  []string
	}{
		{"bgp", []string{"10.0.0.254", "10.0.0.253"}},
		{"bgp-down", []string{"10.0.0.253"}},
		{"bgp-vip", []string{"192.0.2.10", "192.0.2.11"}},
		{"bgp-withdrawn", []string{"192.0.2.11"}},
	} {
		if got := rows(t, page, c.class, "data-name"); !cmp.Equal(got, c.want) {
			t.Errorf("rows of class %s: %q, want %q", c.class, got, c.want)
		}
	}
	for _, want := range []string{"<h2>BGP</h2>", "router id 10.0.0.1 · AS 65001", "failed to connect: connection refused", `<span class="badge up">announced</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
