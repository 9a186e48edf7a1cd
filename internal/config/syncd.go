package config

import (
	"net/netip"
	"slices"
	"strconv"
)

// LVSSyncDaemon is global_defs' lvs_sync_daemon (or an instance's
// deprecated lvs_sync_daemon_interface): which of IPVS's kernel
// connection-sync daemons run, and with what settings (keepalived.conf(5),
// global_defs; ipvsadm(8) --start-daemon).
type LVSSyncDaemon struct {
	Pos Pos `json:"-"`
	// Interface is the one the daemons send and receive on (--mcast-interface).
	Interface string `json:"interface"`
	// Instance is the VRRP instance whose state the daemons follow: the
	// master daemon while it is MASTER, the backup daemon otherwise.
	// Empty: both daemons run for as long as Tandem does.
	Instance string `json:"instance,omitempty"`
	// SyncID tags the sync messages (0..255; a backup with id 0 takes
	// every id). Default: the instance's VRID, or 0 without an instance,
	// or with the deprecated lvs_sync_daemon_interface (as keepalived 2
	// does; keepalived 1.2 used the VRID there).
	SyncID int `json:"sync_id"`
	// MaxLen caps the sync messages' UDP payload (1..65507); 0 lets the
	// kernel size them from the interface's MTU.
	MaxLen int `json:"maxlen,omitempty"`
	// Port is the UDP port (default 8848), TTL the multicast TTL
	// (default 1), Group the multicast group (IPv4 or IPv6, default
	// 224.0.0.81): the kernel's defaults (ip_vs_sync.c), written out.
	Port  int        `json:"port"`
	TTL   int        `json:"ttl"`
	Group netip.Addr `json:"group"`
}

// The kernel's sync daemon defaults (IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT in
// net/netfilter/ipvs/ip_vs_sync.c).
var syncDefaultGroup = netip.MustParseAddr("224.0.0.81")

const (
	syncDefaultPort = 8848
	syncDefaultTTL  = 1
	// syncMaxLen is keepalived's bound: 65535 minus the IPv4 and UDP
	// headers.
	syncMaxLen  = 65535 - 20 - 8
	syncIDUnset = -1
)

// lvsSyncDaemon reads "lvs_sync_daemon IFACE [[inst] INSTANCE] [id N]
// [maxlen N] [port N] [ttl N] [group ADDR]" (keepalived.conf(5)). As in
// keepalived, the instance may be given without "inst" right after the
// interface, and a bare number after it is the sync id (keepalived 1.x
// syntax, accepted with a warning).
func (p *parser) lvsSyncDaemon(cfg *Config) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, -1) || !p.syncDaemonOnce(cfg, n) {
			return
		}
		s := &LVSSyncDaemon{Pos: n.Keyword.Pos, Interface: n.Args[0].Text, SyncID: syncIDUnset}
		if !p.syncIface(n, s) {
			return
		}
		ints := map[string]struct {
			dst    *int
			lo, hi int
		}{
			"id":     {&s.SyncID, 0, 255},
			"maxlen": {&s.MaxLen, 1, syncMaxLen},
			"port":   {&s.Port, 1, 65535},
			"ttl":    {&s.TTL, 1, 255},
		}
		args := n.Args[1:]
		for i := 0; i < len(args); i++ {
			t := args[i]
			opt, isInt := ints[t.Text]
			if !isInt && t.Text != "inst" && t.Text != "group" {
				switch {
				case i == 0:
					s.Instance = t.Text
				case i == 1 && s.Instance != "":
					v, ok := p.uintTok(n, t, 0, 255)
					if !ok {
						return
					}
					p.warnf(t.Pos, "lvs_sync_daemon: sync id %d without \"id\" (keepalived 1.x syntax); write \"id %d\"", v, v)
					s.SyncID = v
				default:
					p.errorf(t.Pos, "lvs_sync_daemon: unknown option %q (expected inst, id, maxlen, port, ttl or group)", t.Text)
					return
				}
				continue
			}
			if i+1 == len(args) {
				p.errorf(t.Pos, "lvs_sync_daemon: %s needs a value", t.Text)
				return
			}
			i++
			v := args[i]
			switch {
			case isInt:
				x, ok := p.uintTok(n, v, opt.lo, opt.hi)
				if !ok {
					return
				}
				*opt.dst = x
			case t.Text == "inst":
				if s.Instance != "" {
					p.errorf(t.Pos, "lvs_sync_daemon: the instance is already %s", s.Instance)
					return
				}
				s.Instance = v.Text
			default: // group
				a, ok := p.addrTok(n, v)
				if !ok {
					return
				}
				if !a.IsMulticast() {
					p.errorf(v.Pos, "lvs_sync_daemon: group %s is not a multicast address", a)
					return
				}
				s.Group = a
			}
		}
		cfg.Global.LVSSyncDaemon = s
	}
}

// lvsSyncDaemonInterface reads an instance's "lvs_sync_daemon_interface
// IFACE", which keepalived deprecated after 1.2.19 in favour of global_defs'
// lvs_sync_daemon: it means lvs_sync_daemon IFACE INSTANCE, with sync id 0
// as keepalived 2 sends it.
func (p *parser) lvsSyncDaemonInterface(cfg *Config, in *Instance) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) || !p.syncDaemonOnce(cfg, n) {
			return
		}
		s := &LVSSyncDaemon{Pos: n.Keyword.Pos, Interface: n.Args[0].Text, Instance: in.Name, SyncID: 0}
		if !p.syncIface(n, s) {
			return
		}
		p.warnf(n.Keyword.Pos, "vrrp_instance %s: lvs_sync_daemon_interface is deprecated; read as global_defs { lvs_sync_daemon %s %s id 0 } (keepalived 1.2 used the VRID as the sync id: write it with id to keep that)",
			in.Name, s.Interface, in.Name)
		cfg.Global.LVSSyncDaemon = s
	}
}

// syncDaemonOnce refuses a second sync daemon: the kernel runs one master
// and one backup daemon per network namespace.
func (p *parser) syncDaemonOnce(cfg *Config, n *node) bool {
	if prev := cfg.Global.LVSSyncDaemon; prev != nil {
		p.errorf(n.Keyword.Pos, "%s: the sync daemon is already configured (lvs_sync_daemon %s at %s)", n.Keyword.Text, prev.Interface, prev.Pos)
		return false
	}
	return true
}

// syncIface checks the interface name against the kernel's
// IP_VS_IFNAME_MAXLEN (16, with the NUL).
func (p *parser) syncIface(n *node, s *LVSSyncDaemon) bool {
	if len(s.Interface) > ifNameMax {
		p.errorf(n.Args[0].Pos, "%s: interface name %q is longer than %d bytes", n.Keyword.Text, s.Interface, ifNameMax)
		return false
	}
	return true
}

// finalizeSyncDaemon resolves the instance, which must exist (keepalived
// drops the whole lvs_sync_daemon otherwise), the sync id's default (the
// instance's VRID, else 0) and the kernel's defaults.
func (p *parser) finalizeSyncDaemon(cfg *Config) {
	s := cfg.Global.LVSSyncDaemon
	if s == nil {
		return
	}
	var vrid int
	if s.Instance != "" {
		i := slices.IndexFunc(cfg.Instances, func(in *Instance) bool { return in.Name == s.Instance })
		if i < 0 {
			p.errorf(s.Pos, "lvs_sync_daemon: vrrp_instance %q is not defined", s.Instance)
			return
		}
		vrid = cfg.Instances[i].VRID
	}
	if s.SyncID == syncIDUnset {
		s.SyncID = vrid
	}
	if s.Port == 0 {
		s.Port = syncDefaultPort
	}
	if s.TTL == 0 {
		s.TTL = syncDefaultTTL
	}
	if !s.Group.IsValid() {
		s.Group = syncDefaultGroup
	}
}

// syncDaemon writes lvs_sync_daemon in its global form (the deprecated
// per-instance one reads the same).
func (f *formatter) syncDaemon(s *LVSSyncDaemon) {
	if s == nil {
		return
	}
	w := []string{"lvs_sync_daemon", s.Interface}
	if s.Instance != "" {
		w = append(w, "inst", s.Instance)
	}
	w = append(w, "id", strconv.Itoa(s.SyncID))
	if s.MaxLen > 0 {
		w = append(w, "maxlen", strconv.Itoa(s.MaxLen))
	}
	w = append(w, "port", strconv.Itoa(s.Port), "ttl", strconv.Itoa(s.TTL), "group", s.Group.String())
	f.line(w...)
}
