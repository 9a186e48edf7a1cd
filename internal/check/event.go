package check

import (
	"log/slog"
	"time"

	"tandem/internal/config"
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds. Real-server events carry the server's weight to program;
// virtual-server events carry the sum of the alive servers' weights.
const (
	// RealServerUp: all the server's checkers are up; add it at Weight.
	RealServerUp EventKind = iota + 1
	// RealServerDown: a checker is down; remove the server, or with
	// Inhibit (inhibit_on_failure) keep it at weight 0.
	RealServerDown
	// WeightChanged: an alive server's weight changed (misc_dynamic,
	// FILE_CHECK).
	WeightChanged
	// QuorumUp: the alive servers' weights reach quorum + hysteresis.
	QuorumUp
	// QuorumDown: they fell to 0 or below quorum - hysteresis.
	QuorumDown
	// SorryServerIn: quorum is lost and the virtual server has a
	// sorry_server: put it in and take the alive real servers out
	// (ipwrapper.c perform_quorum_state). Until SorryServerOut, real-server
	// events record health only and do not touch the pool.
	SorryServerIn
	// SorryServerOut: quorum is back: remove the sorry server and restore
	// the alive real servers at their weights.
	SorryServerOut
)

var kindNames = [...]string{
	RealServerUp:   "real_server_up",
	RealServerDown: "real_server_down",
	WeightChanged:  "weight_changed",
	QuorumUp:       "quorum_up",
	QuorumDown:     "quorum_down",
	SorryServerIn:  "sorry_server_in",
	SorryServerOut: "sorry_server_out",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// LogValue logs the kind's name: slog's JSON handler would print the
// number (it marshals the value, not its String).
func (k EventKind) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Event is a change the data plane and the notifiers act on.
type Event struct {
	Time time.Time
	Kind EventKind
	VS   *config.VirtualServer
	// RS is nil for virtual-server events.
	RS *config.RealServer
	// Weight is the real server's weight (0 when down), or for quorum and
	// sorry-server events the sum of the alive servers' weights.
	Weight int
	// Inhibit marks a RealServerDown that keeps the server in the pool at
	// weight 0 (inhibit_on_failure).
	Inhibit bool
	// Reason is the checker type and its last error ("HTTP_GET: status
	// 503"), "initial state" or "shutdown".
	Reason string
	// Initial marks the events of Start, which give the state at start.
	Initial bool
}
