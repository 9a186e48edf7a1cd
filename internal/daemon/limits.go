package daemon

import (
	"log/slog"

	"tandem/internal/fdlimit"
)

// Most connections each status listener holds open; fewer when file
// descriptors are scarce (connCap).
const (
	maxSocketConns = 64  // the status socket: tandem status, lvs, reload
	maxHTTPConns   = 512 // --http: scrapers and status pages
)

// raiseFileLimit raises RLIMIT_NOFILE as far as the process may
// (fdlimit.Raise) and returns the limit then in force, so that a flood of
// clients cannot take the descriptors that VRRP sockets, netlink requests
// and scripts need.
func raiseFileLimit(log *slog.Logger) uint64 {
	_, lim, err := fdlimit.Raise()
	if err != nil {
		log.Warn("file descriptor limit not raised", "err", err, "limit", lim.Cur)
	}
	if lim.Cur == 0 { // unknown: assume the usual default
		return 1024
	}
	return lim.Cur
}

// connCap is how many connections a listener may hold under a file limit
// of limit: at most most, and at most an eighth of the limit, so that both
// listeners together leave most descriptors to the rest of the daemon.
func connCap(limit uint64, most int) int {
	return int(max(min(limit/8, uint64(most)), 1))
}
