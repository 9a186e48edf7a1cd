package netio

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SetPromoteSecondaries sets net.ipv4.conf.IFACE.promote_secondaries to on
// and reports the value it had. With it, removing a VIP that happens to be
// the primary address of its subnet on the interface promotes the next
// address of that subnet instead of deleting every one of them
// (keepalived.conf(5) promote_secondaries; Documentation/networking/
// ip-sysctl.rst). /proc/sys/net is that of the calling thread's network
// namespace.
func SetPromoteSecondaries(iface string, on bool) (was bool, err error) {
	if iface == "" || strings.ContainsAny(iface, "/") || iface == "." || iface == ".." {
		return false, fmt.Errorf("promote_secondaries: bad interface name %q", iface)
	}
	p := filepath.Join("/proc/sys/net/ipv4/conf", iface, "promote_secondaries")
	b, err := os.ReadFile(p)
	if err != nil {
		return false, fmt.Errorf("promote_secondaries on %s: %w", iface, err)
	}
	was = strings.TrimSpace(string(b)) != "0"
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(p, []byte(v), 0); err != nil {
		return was, fmt.Errorf("promote_secondaries on %s: %w", iface, err)
	}
	return was, nil
}
