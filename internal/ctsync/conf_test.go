package ctsync

import (
	"net/netip"
	"strings"
	"testing"

	"tandem/internal/config"
)

// TestRender checks the transport section and the filter of the
// conntrackd.conf written for each form of conntrack_sync.
func TestRender(t *testing.T) {
	a := netip.MustParseAddr
	f := FilesFor("/run/tandem/tandem.sock")
	if f.Socket != "/run/tandem/tandem.conntrackd.ctl" || f.Conf != "/run/tandem/tandem.conntrackd.conf" {
		t.Errorf("files %+v", f)
	}
	tests := []struct {
		name      string
		c         config.ConntrackSync
		want, not []string
	}{
		{"unicast IPv4",
			config.ConntrackSync{Interface: "eth2", Source: a("10.9.0.1"), Peer: a("10.9.0.2"), Port: 3780},
			[]string{"Mode FTFW {", "\tUDP {\n\t\tIPv4_address 10.9.0.1\n\t\tIPv4_Destination_Address 10.9.0.2\n\t\tPort 3780\n\t\tInterface eth2\n",
				"\t\t\tIPv4_address 10.9.0.1\n\t\t\tIPv4_address 10.9.0.2\n", "Path /run/tandem/tandem.conntrackd.ctl",
				"LockFile /run/tandem/tandem.conntrackd.lock", "LogFile /run/tandem/tandem.conntrackd.log", "\t\t\tTCP\n\t\t\tUDP\n"},
			[]string{"Multicast"}},
		{"multicast IPv4",
			config.ConntrackSync{Interface: "eth2", Source: a("10.9.0.1"), Group: a("225.0.0.50"), Port: 3781},
			[]string{"\tMulticast {\n\t\tIPv4_address 225.0.0.50\n\t\tGroup 3781\n\t\tIPv4_interface 10.9.0.1\n\t\tInterface eth2\n"},
			[]string{"UDP {", "Destination"}},
		{"multicast IPv6",
			config.ConntrackSync{Interface: "eth2", Source: a("fd00::1"), Group: a("ff02::3780"), Port: 3780},
			[]string{"\tMulticast {\n\t\tIPv6_address ff02::3780\n\t\tGroup 3780\n\t\tInterface eth2\n", "\t\t\tIPv6_address fd00::1\n"},
			[]string{"interface fd00::1"}},
		{"unicast IPv6",
			config.ConntrackSync{Interface: "eth2", Source: a("fd00::1"), Peer: a("fd00::2"), Port: 3780},
			[]string{"\t\tIPv6_address fd00::1\n\t\tIPv6_Destination_Address fd00::2\n"},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Render(&tt.c, f))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in\n%s", w, got)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in\n%s", w, got)
				}
			}
		})
	}
}
