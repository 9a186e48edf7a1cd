package daemon

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lab"
	"tandem/internal/track"
)

// TestTrackGroupTrackers: the instances of a track_group track the
// interface of each static entry naming the group (an address's dev, a
// route's dev, a rule's iif) with weight 0, so that the interface going
// down puts them in FAULT; entries with no_track, without an interface or
// without a group add nothing, and an interface an instance tracked with a
// weight becomes a fault (keepalived add_vrrp_to_interface).
func TestTrackGroupTrackers(t *testing.T) {
	cfg := lab.ParseConfig(t, `track_group TG {
    group {
        VI_1
        VI_2
    }
}
static_ipaddress {
    192.0.2.1/24 dev eth1 track_group TG
    192.0.2.2/24 dev eth5
}
static_routes {
    198.51.100.0/24 via 192.0.2.254 dev eth2 track_group TG
    203.0.113.0/24 via 192.0.2.254 track_group TG
}
static_rules {
    from 192.0.2.0/24 table 100 iif eth3 track_group TG
    from 192.0.2.0/24 table 101 iif eth4 no_track track_group TG
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 100
    track_interface {
        eth1 weight 10
    }
    virtual_ipaddress {
        10.0.0.1/24
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    priority 100
    virtual_ipaddress {
        10.0.0.2/24
    }
}
vrrp_instance VI_3 {
    interface eth0
    virtual_router_id 3
    priority 100
    virtual_ipaddress {
        10.0.0.3/24
    }
}
`)
	ws := trackers(cfg)
	got := map[string]map[string]int{} // interface -> instance -> weight
	for k, w := range ws {
		if k.kind != track.KindInterface {
			continue
		}
		got[k.name] = map[string]int{}
		for _, u := range w.users {
			if _, dup := got[k.name][u.instance]; dup {
				t.Errorf("interface %s: instance %s tracks it twice", k.name, u.instance)
			}
			got[k.name][u.instance] = u.ref.Weight
		}
	}
	want := map[string]map[string]int{
		"eth0": {"VI_1": 0, "VI_2": 0, "VI_3": 0}, // their own interfaces
		"eth1": {"VI_1": 0, "VI_2": 0},
		"eth2": {"VI_1": 0, "VI_2": 0},
		"eth3": {"VI_1": 0, "VI_2": 0},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("interface watches (-want +got):\n%s", d)
	}
	// A tracked static entry's interface going down is a fault of each
	// instance of the group, whose reason names the group; its coming
	// back is none.
	sink := &detailSink{}
	set := &trackerSet{eng: sink, log: slog.New(slog.DiscardHandler), ws: ws}
	eth2 := ws[watchKey{track.KindInterface, "eth2"}]
	set.apply(eth2, track.Update{Kind: track.KindInterface, Name: "eth2", OK: false})
	set.apply(eth2, track.Update{Kind: track.KindInterface, Name: "eth2", OK: true})
	wantCalls := []string{
		"VI_1 track_interface eth2 0 true track_group TG: track_interface eth2 down",
		"VI_2 track_interface eth2 0 true track_group TG: track_interface eth2 down",
		"VI_1 track_interface eth2 0 false track_group TG: track_interface eth2 up",
		"VI_2 track_interface eth2 0 false track_group TG: track_interface eth2 up",
	}
	if d := cmp.Diff(wantCalls, sink.calls); d != "" {
		t.Errorf("engine told (-want +got):\n%s", d)
	}
}

// detailSink records the engine's Track calls with their detail.
type detailSink struct{ calls []string }

func (s *detailSink) Track(instance, name string, weight int, fault bool, detail string) {
	s.calls = append(s.calls, fmt.Sprintf("%s %s %d %t %s", instance, name, weight, fault, detail))
}
