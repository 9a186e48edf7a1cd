package check

import (
	"net/netip"
	"time"

	"tandem/internal/config"
)

// VSStatus is the health state of one virtual server.
type VSStatus struct {
	Name string `json:"name"`
	// Quorum is the quorum in force (after keepalived's reduction to the
	// real servers' total weight), so a reload that changes it shows.
	Quorum        int        `json:"quorum"`
	QuorumUp      bool       `json:"quorum_up"`
	SorryServerIn bool       `json:"sorry_server_in"`
	Suspended     bool       `json:"suspended"`
	Weight        int        `json:"alive_weight"`
	RealServers   []RSStatus `json:"real_servers"`
}

// RSStatus is the health state of one real server.
type RSStatus struct {
	Addr     netip.AddrPort  `json:"addr"`
	Healthy  bool            `json:"healthy"`
	Weight   int             `json:"weight"`
	Checkers []CheckerStatus `json:"checkers"`
}

// Result values of CheckerStatus.LastResult.
const (
	ResultNone   = "none" // not run yet
	ResultOK     = "ok"
	ResultFailed = "failed"
)

// CheckerStatus is the state of one checker.
type CheckerStatus struct {
	Type       config.CheckType `json:"type"`
	Up         bool             `json:"up"`
	LastResult string           `json:"last_result"`
	LastError  string           `json:"last_error,omitempty"`
	// LastChange is when Up last changed (zero: never since start).
	LastChange time.Time     `json:"last_change,omitzero"`
	LastRun    time.Time     `json:"last_run,omitzero"`
	Latency    time.Duration `json:"latency"`
	// Retries is how many failures in a row an up checker has had.
	Retries int `json:"retries"`
}

// Snapshot copies the state of every virtual server, in configuration
// order.
func (c *Core) Snapshot() []VSStatus {
	out := make([]VSStatus, 0, len(c.vss))
	for _, vs := range c.vss {
		v := VSStatus{
			Name: vs.cfg.Name(), Quorum: vs.cfg.Quorum, QuorumUp: vs.quorumUp, SorryServerIn: vs.sorryIn,
			Suspended: vs.suspended, Weight: int(vs.weightSum()),
		}
		for _, rs := range vs.rss {
			r := RSStatus{
				Addr:    netip.AddrPortFrom(rs.cfg.IP, uint16(rs.cfg.Port)),
				Healthy: rs.alive,
			}
			if rs.alive {
				r.Weight = realWeight(rs.weight)
			}
			for _, ck := range rs.cks {
				res := ResultNone
				switch {
				case !ck.hasRun:
				case ck.lastOK:
					res = ResultOK
				default:
					res = ResultFailed
				}
				r.Checkers = append(r.Checkers, CheckerStatus{
					Type: ck.spec.Checker.Type, Up: ck.up, LastResult: res, LastError: ck.lastErr,
					LastChange: ck.lastChange, LastRun: ck.lastRun, Latency: ck.latency, Retries: ck.retryIt,
				})
			}
			v.RealServers = append(v.RealServers, r)
		}
		out = append(out, v)
	}
	return out
}
