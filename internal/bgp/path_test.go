package bgp

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"google.golang.org/protobuf/proto"
)

// attrsOf decodes a path's attributes by type.
func attrsOf(t *testing.T, p *api.Path) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, a := range p.Pattrs {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out[string(proto.MessageName(m).Name())] = m
	}
	return out
}

// TestNewPath: the UPDATE content of a VIP's route, IPv4 and IPv6, with
// and without the graceful-shutdown community, which never changes the
// caller's list.
func TestNewPath(t *testing.T) {
	med := uint32(7)
	attrs := Attrs{Communities: make([]uint32, 1, 4), MED: &med}
	attrs.Communities[0] = 65001<<16 | 10
	p4, err := newPath(netip.MustParsePrefix("192.0.2.10/32"), attrs, true)
	if err != nil {
		t.Fatal(err)
	}
	a := attrsOf(t, p4)
	if p4.Family.Afi != api.Family_AFI_IP {
		t.Errorf("family %v", p4.Family)
	}
	if c := a["CommunitiesAttribute"].(*api.CommunitiesAttribute).Communities; !slices.Equal(c, []uint32{65001<<16 | 10, GracefulShutdownCommunity}) {
		t.Errorf("communities %x", c)
	}
	if got := attrs.Communities[:cap(attrs.Communities)]; got[1] != 0 {
		t.Errorf("the caller's communities were written to: %x", got)
	}
	if m := a["MultiExitDiscAttribute"].(*api.MultiExitDiscAttribute).Med; m != 7 {
		t.Errorf("med %d", m)
	}
	if nh := a["NextHopAttribute"].(*api.NextHopAttribute).NextHop; nh != "0.0.0.0" {
		t.Errorf("next hop %s", nh)
	}

	p6, err := newPath(netip.MustParsePrefix("2001:db8::10/128"), Attrs{}, false)
	if err != nil {
		t.Fatal(err)
	}
	a = attrsOf(t, p6)
	mp, ok := a["MpReachNLRIAttribute"].(*api.MpReachNLRIAttribute)
	if p6.Family.Afi != api.Family_AFI_IP6 || !ok || len(mp.Nlris) != 1 || !slices.Equal(mp.NextHops, []string{"::"}) {
		t.Errorf("IPv6 path: family %v, mp_reach %v", p6.Family, mp)
	}
	if _, ok := a["CommunitiesAttribute"]; ok {
		t.Error("communities without any asked for")
	}
	if _, ok := a["MultiExitDiscAttribute"]; ok {
		t.Error("a MED without one asked for")
	}
}

// TestLastErrors: the adapter keeps each neighbor's last failure from
// GoBGP's log, whatever level it is logged at, and nothing else.
func TestLastErrors(t *testing.T) {
	errs := &lastErrors{m: map[string]string{}}
	l := &logAdapter{log: slog.New(slog.NewTextHandler(io.Discard, nil)), errs: errs}
	l.Info("Add a peer configuration", gobgplog.Fields{"Key": "10.0.0.1", "Topic": "Peer"})
	if e := errs.get("10.0.0.1"); e != "" {
		t.Errorf("an info line made a last error: %q", e)
	}
	l.Debug("failed to connect", gobgplog.Fields{"Key": "10.0.0.1", "Error": "connection refused"})
	if e := errs.get("10.0.0.1"); e != "failed to connect: connection refused" {
		t.Errorf("after a failed connect: %q", e)
	}
	l.Debug("state changed", gobgplog.Fields{"Key": "10.0.0.1", "old": "BGP_FSM_ESTABLISHED", "new": bgpIdle, "reason": "hold-timer-expired"})
	if e := errs.get("10.0.0.1"); e != "session down in BGP_FSM_ESTABLISHED: hold-timer-expired" {
		t.Errorf("after a session down: %q", e)
	}
	l.Debug("state changed", gobgplog.Fields{"Key": "10.0.0.1", "old": "BGP_FSM_IDLE", "new": "BGP_FSM_ACTIVE"})
	l.Warn("sent notification", gobgplog.Fields{"Key": "10.0.0.2", "Data": "cease"})
	if e := errs.get("10.0.0.1"); e != "session down in BGP_FSM_ESTABLISHED: hold-timer-expired" {
		t.Errorf("a state change that is no failure replaced it: %q", e)
	}
	if e := errs.get("10.0.0.2"); e != "sent notification: cease" {
		t.Errorf("the other neighbor: %q", e)
	}
	errs.forget("10.0.0.2")
	if e := errs.get("10.0.0.2"); e != "" {
		t.Errorf("after forget: %q", e)
	}
}
