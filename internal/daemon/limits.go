package daemon

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Most connections each status listener holds open; fewer when file
// descriptors are scarce (connCap).
const (
	maxSocketConns = 64  // the status socket: tandem status, lvs, reload
	maxHTTPConns   = 512 // --http: scrapers and status pages
)

// raiseFileLimit raises RLIMIT_NOFILE as far as the process may and
// returns the limit then in force. Go already raises the soft limit to the
// hard one; as root (CAP_SYS_RESOURCE) the hard limit goes up to the
// kernel's ceiling, fs.nr_open, so that a flood of clients cannot take the
// descriptors that VRRP sockets, netlink requests and scripts need.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("file descriptor limit unknown", "err", err)
		return 1024
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && ceiling > lim.Max {
			up := syscall.Rlimit{Cur: ceiling, Max: ceiling}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err == nil {
				return ceiling
			}
		}
	}
	if lim.Cur < lim.Max {
		up := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err == nil {
			return lim.Max
		}
	}
	return lim.Cur
}

// connCap is how many connections a listener may hold under a file limit
// of limit: at most most, and at most an eighth of the limit, so that both
// listeners together leave most descriptors to the rest of the daemon.
func connCap(limit uint64, most int) int {
	return int(max(min(limit/8, uint64(most)), 1))
}
