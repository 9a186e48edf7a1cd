package api

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// bfdSessions are two sessions, one Up and one Down after a flap.
func bfdSessions() []BFDSessionStatus {
	return []BFDSessionStatus{
		{Name: "peer", Neighbor: "10.0.0.2", Source: "10.0.0.1", State: "Up", Detection: 0.015, TxInterval: 0.005,
			LastChange: statusT0.Add(time.Second), Sent: 1000, Received: 990},
		{Name: "<rs>", Neighbor: "10.0.0.3", State: "Down", LocalDiag: 1, Detection: 0.05, Flaps: 2,
			LastChange: statusT0.Add(5 * time.Second), Sent: 40, Received: 30, Dropped: 3},
	}
}

// TestMetricsBFD: every session's state, flaps, detection time and
// packets, and no BFD series without sessions.
func TestMetricsBFD(t *testing.T) {
	src := testSource()
	src.set(func(st *Status) { st.BFD = nil })
	names := []string{"tandem_bfd_session_up", "tandem_bfd_session_flaps_total", "tandem_bfd_detection_seconds",
		"tandem_bfd_packets_sent_total", "tandem_bfd_packets_received_total", "tandem_bfd_packets_dropped_total"}
	if n := testutil.CollectAndCount(statusCollector{src}, names...); n != 0 {
		t.Errorf("%d BFD series without sessions, want 0", n)
	}
	src.set(func(st *Status) { st.BFD = bfdSessions() })
	want := `
# HELP tandem_bfd_detection_seconds Detection time in force for the BFD session (RFC 5880 section 6.8.4).
# TYPE tandem_bfd_detection_seconds gauge
tandem_bfd_detection_seconds{session="<rs>"} 0.05
tandem_bfd_detection_seconds{session="peer"} 0.015
# HELP tandem_bfd_packets_dropped_total BFD control packets for the session that failed validation (RFC 5880 section 6.8.6).
# TYPE tandem_bfd_packets_dropped_total counter
tandem_bfd_packets_dropped_total{session="<rs>"} 3
tandem_bfd_packets_dropped_total{session="peer"} 0
# HELP tandem_bfd_packets_received_total BFD control packets received for the session.
# TYPE tandem_bfd_packets_received_total counter
tandem_bfd_packets_received_total{session="<rs>"} 30
tandem_bfd_packets_received_total{session="peer"} 990
# HELP tandem_bfd_packets_sent_total BFD control packets sent on the session.
# TYPE tandem_bfd_packets_sent_total counter
tandem_bfd_packets_sent_total{session="<rs>"} 40
tandem_bfd_packets_sent_total{session="peer"} 1000
# HELP tandem_bfd_session_flaps_total Transitions of the BFD session out of Up since start.
# TYPE tandem_bfd_session_flaps_total counter
tandem_bfd_session_flaps_total{session="<rs>"} 2
tandem_bfd_session_flaps_total{session="peer"} 0
# HELP tandem_bfd_session_up 1 if the BFD session (bfd_instance) is Up, else 0.
# TYPE tandem_bfd_session_up gauge
tandem_bfd_session_up{neighbor="10.0.0.2",session="peer"} 1
tandem_bfd_session_up{neighbor="10.0.0.3",session="<rs>"} 0
`
	if err := testutil.CollectAndCompare(statusCollector{src}, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// TestPageBFD: the status page has a row per session, the ones not Up
// marked, names escaped; with no session there is no section.
func TestPageBFD(t *testing.T) {
	page := sectionPage(t, "BFD sessions", func(st *Status) { st.BFD = nil }, func(st *Status) { st.BFD = bfdSessions() })
	if got, want := rows(t, page, "bfd", "data-name"), []string{"peer", "<rs>"}; !cmp.Equal(got, want) {
		t.Errorf("BFD rows %q, want %q", got, want)
	}
	if got := rows(t, page, "bfd-down", "data-name"); !cmp.Equal(got, []string{"<rs>"}) {
		t.Errorf("sessions marked down: %q, want <rs>", got)
	}
	for _, want := range []string{"<h2>BFD sessions</h2>", "&lt;rs&gt;", "15.0 ms", "50.0 ms", `<div class="muted">from 10.0.0.1</div>`,
		`<span class="badge down">Down</span>`, `<span class="badge warn">3</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// sectionPage checks that the status page has no section headed title
// for a status changed by without, and returns the page for one changed
// by with.
func sectionPage(t *testing.T, title string, without, with func(*Status)) string {
	t.Helper()
	src := testSource()
	src.set(without)
	srv := newTestServer(t, src)
	page, _ := httpGet(t, srv.URL+"/")
	if strings.Contains(page, "<h2>"+title+"</h2>") {
		t.Errorf("a %s section without anything to show", title)
	}
	src.set(with)
	page, _ = httpGet(t, srv.URL+"/")
	return page
}

// TestWriteTextBFD: tandem status prints a table of the sessions.
func TestWriteTextBFD(t *testing.T) {
	var b strings.Builder
	if err := WriteText(&b, Status{BFD: bfdSessions()}, statusT0.Add(65*time.Second)); err != nil {
		t.Fatal(err)
	}
	want := `
BFD SESSION  NEIGHBOR  STATE  DETECTION  FLAPS  SINCE  SENT/RECEIVED/DROPPED
peer         10.0.0.2  Up     15ms       0      1m4s   1000/990/0
<rs>         10.0.0.3  Down   50ms       2      1m0s   40/30/3
`
	if got := b.String(); got != want {
		t.Errorf("WriteText:\n%s\nwant\n%s", got, want)
	}
}
