package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/vrrp"
)

// The daemon records a transition's reason in its event log and logs no
// line of its own for it: the engine's `VRRP transition` line is the one.
func TestTransitionReasonInEventLogOnly(t *testing.T) {
	var logs lab.LogBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, lab.TestWriter(t)), nil))
	td := startDaemon(t, "global_defs {\n}\n", log)
	sc := vrrpChange(&config.Instance{Name: "VI_1"}, vrrp.Master)
	sc.Reason = vrrp.Reason{Kind: vrrp.ReasonAdvertTimeout, Peer: netip.MustParseAddr("10.0.0.11")}
	td.d.stateChanged(sc)
	td.stop(t)
	var found bool
	for _, e := range td.d.Status().Events {
		if e.Object == "instance VI_1" {
			found = true
			if e.Message != "entering MASTER" || e.Reason != "advert timeout from 10.0.0.11" {
				t.Errorf("event %+v: want entering MASTER for advert timeout from 10.0.0.11", e)
			}
		}
	}
	if !found {
		t.Errorf("no event for VI_1's transition in %+v", td.d.Status().Events)
	}
	if n := logs.Count("MASTER"); n != 0 {
		t.Errorf("the daemon logged the transition %d times; the engine's line is the only one", n)
	}
}
