// Package ctsync runs conntrackd (Debian's conntrackd package) for the
// Tandem block conntrack_sync: it writes conntrackd.conf (mode FTFW), keeps
// conntrackd running as a child of Tandem (restarted with backoff when it
// dies), and on the VRRP transitions of the instance or sync group the
// block names gives conntrackd the commands netfilter's primary-backup.sh
// gives it from keepalived's notify scripts (conntrackd(8),
// /usr/share/doc/conntrackd/examples/sync/primary-backup.sh).
package ctsync

import (
	"fmt"
	"path/filepath"
	"strings"

	"tandem/internal/config"
)

// Files are the paths of one Tandem's conntrackd, next to Tandem's own
// socket: Tandem writes Conf and removes all four at stop.
type Files struct {
	Conf, Socket, Lock, Log string
}

// FilesFor names conntrackd's files after Tandem's socket path
// (/run/tandem/tandem.sock: /run/tandem/tandem.conntrackd.conf, .ctl,
// .lock, .log), so that Tandems with their own sockets have their own.
func FilesFor(tandemSocket string) Files {
	base := strings.TrimSuffix(tandemSocket, filepath.Ext(tandemSocket)) + ".conntrackd"
	return Files{Conf: base + ".conf", Socket: base + ".ctl", Lock: base + ".lock", Log: base + ".log"}
}

// Socket buffers and hash sizes of conntrackd's FTFW example
// (examples/sync/ftfw/conntrackd.conf).
const (
	sockBuf     = 1249280
	hashSize    = 32768
	hashLimit   = 131072
	nlBuf       = 2097152
	nlBufGrowth = 8388608
)

// Render is conntrackd.conf for c: FTFW over unicast UDP to the peer or
// multicast to the group, on c's interface, with the control socket,
// lock and log in f. Only TCP, UDP, SCTP and DCCP flows are replicated
// (the VRRP adverts and the sync messages themselves are not), and none of
// the sync link's own addresses nor loopback's.
func Render(c *config.ConntrackSync, f Files) []byte {
	var b strings.Builder
	fam := "IPv4"
	if c.Source.Is6() {
		fam = "IPv6"
	}
	line := func(depth int, format string, a ...any) {
		b.WriteString(strings.Repeat("\t", depth))
		fmt.Fprintf(&b, format, a...)
		b.WriteByte('\n')
	}
	line(0, "# Written by Tandem from conntrack_sync at %s; rewritten at each start.", c.Pos)
	line(0, "Sync {")
	line(1, "Mode FTFW {")
	line(1, "}")
	if c.Group.IsValid() {
		line(1, "Multicast {")
		line(2, "%s_address %s", fam, c.Group)
		line(2, "Group %d", c.Port)
		if fam == "IPv4" {
			line(2, "IPv4_interface %s", c.Source)
		}
	} else {
		line(1, "UDP {")
		line(2, "%s_address %s", fam, c.Source)
		line(2, "%s_Destination_Address %s", fam, c.Peer)
		line(2, "Port %d", c.Port)
	}
	line(2, "Interface %s", c.Interface)
	line(2, "SndSocketBuffer %d", sockBuf)
	line(2, "RcvSocketBuffer %d", sockBuf)
	line(2, "Checksum on")
	line(1, "}")
	line(0, "}")
	line(0, "General {")
	line(1, "HashSize %d", hashSize)
	line(1, "HashLimit %d", hashLimit)
	line(1, "LogFile %s", f.Log)
	line(1, "Syslog off")
	line(1, "LockFile %s", f.Lock)
	line(1, "UNIX {")
	line(2, "Path %s", f.Socket)
	line(1, "}")
	line(1, "NetlinkBufferSize %d", nlBuf)
	line(1, "NetlinkBufferSizeMaxGrowth %d", nlBufGrowth)
	line(1, "Filter From Userspace {")
	line(2, "Protocol Accept {")
	for _, p := range filterProtocols {
		line(3, "%s", strings.ToUpper(p))
	}
	line(2, "}")
	line(2, "Address Ignore {")
	line(3, "IPv4_address 127.0.0.1")
	line(3, "IPv6_address ::1")
	line(3, "%s_address %s", fam, c.Source)
	if c.Peer.IsValid() {
		line(3, "%s_address %s", fam, c.Peer)
	}
	line(2, "}")
	line(1, "}")
	line(0, "}")
	return []byte(b.String())
}
