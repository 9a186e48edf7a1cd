package netio

import (
	"fmt"
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
	if iface == "" || strings.Contains(iface, "/") || iface == "." || iface == ".." {
		return false, fmt.Errorf("promote_secondaries: bad interface name %q", iface)
	}
	key := ipv4Conf(iface, "promote_secondaries")
	v, err := readSysctl(key)
	if err != nil {
		return false, fmt.Errorf("promote_secondaries on %s: %w", iface, err)
	}
	s := Sysctl{Key: key}
	if on {
		s.Value = 1
	}
	return v != 0, writeSysctl(s)
}
