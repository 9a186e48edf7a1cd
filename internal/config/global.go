package config

import (
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Defaults of global_defs (keepalived global_data.c and keepalived.conf(5)).
var (
	defaultMcast4 = netip.MustParseAddr("224.0.0.18") // RFC 3768 §5.2.2
	defaultMcast6 = netip.MustParseAddr("ff02::12")   // RFC 5798 §5.1.2.2
)

func defaultGlobal() Global {
	return Global{
		SMTPConnectTimeout: Duration(30 * time.Second),
		VRRPMcastGroup4:    defaultMcast4,
		VRRPMcastGroup6:    defaultMcast6,
		VRRPVersion:        2,
		Garp:               defaultGarp(),
		Firewall:           Firewall{Priority: -1}, // keepalived.conf(5) nftables
		// Tandem's default differs from keepalived's (off): a master that
		// hears a higher priority sends one last advert of its own, so
		// that the rightful master hears a lower priority and
		// re-announces its addresses (garp_lower_prio_repeat). Without
		// it, a healed split or partition whose lower priority master
		// hears the higher one first ends with nobody announcing, and
		// clients keep the old master's MAC until their neighbour entry
		// times out (seconds). docs/split-heal.md.
		VRRPHigherPrioSendAdv: true,
	}
}

func (p *parser) global(n *node, cfg *Config) {
	g := &cfg.Global
	g.Pos = n.Keyword.Pos
	if !p.args(n, 0, 0) {
		return
	}
	kids, ok := p.blockOf(n)
	if !ok {
		return
	}
	p.block("global_defs", kids, merge(p.globalHandlers(g), map[string]handler{"lvs_sync_daemon": p.lvsSyncDaemon(cfg)}))
}

func (p *parser) globalHandlers(g *Global) map[string]handler {
	return merge(p.garpHandlers(&g.Garp, "vrrp_"), p.firewallHandlers(&g.Firewall), p.opsHandlers(&g.Ops), map[string]handler{
		"router_id": p.setStr(&g.RouterID),
		"notification_email": func(n *node) {
			g.NotificationEmail = append(g.NotificationEmail, p.words(n)...)
		},
		"notification_email_from": p.setStr(&g.NotificationEmailFrom),
		// smtp_server ADDR|NAME [PORT] (keepalived.conf(5); default port 25).
		"smtp_server": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 2) {
				return
			}
			port := 25
			if len(n.Args) == 2 {
				v, ok := p.uintTok(n, n.Args[1], 1, 65535)
				if !ok {
					return
				}
				port = v
			}
			g.SMTPServer = net.JoinHostPort(n.Args[0].Text, strconv.Itoa(port))
		},
		"smtp_helo_name": p.setStr(&g.SMTPHeloName),
		// keepalived: whole seconds 1..UINT_MAX/TIMER_HZ (0 is an error).
		"smtp_connect_timeout":         p.setWholeSecs(&g.SMTPConnectTimeout, 1, maxGarpSecs),
		"smtp_alert":                   p.setFlagPtr(&g.SMTPAlert),
		"smtp_alert_vrrp":              p.setFlagPtr(&g.SMTPAlertVRRP),
		"smtp_alert_checker":           p.setFlagPtr(&g.SMTPAlertChecker),
		"script_user":                  p.userTo(&g.ScriptUser, &g.ScriptGroup),
		"enable_script_security":       p.setConst(&g.EnableScriptSecurity, true),
		"default_interface":            p.setStr(&g.DefaultInterface),
		"dynamic_interfaces":           p.dynamicInterfaces(g),
		"vrrp_mcast_group4":            p.mcastTo(&g.VRRPMcastGroup4, true),
		"vrrp_mcast_group6":            p.mcastTo(&g.VRRPMcastGroup6, false),
		"vrrp_version":                 p.setInt(&g.VRRPVersion, 2, 3),
		"vrrp_strict":                  p.setConst(&g.VRRPStrict, true),
		"vrrp_skip_check_adv_addr":     p.setConst(&g.VRRPSkipCheckAdv, true),
		"vrrp_check_unicast_src":       p.setConst(&g.VRRPCheckUnicastSrc, true),
		"vrrp_startup_delay":           p.setStartupDelay(&g.VRRPStartupDelay),
		"vrrp_garp_interval":           p.setGarpInterval(&g.VRRPGarpInterval),
		"vrrp_gna_interval":            p.setGarpInterval(&g.VRRPGnaInterval),
		"vmac_prefix":                  p.setStr(&g.VMACPrefix),
		"vrrp_lower_prio_no_advert":    p.setFlag(&g.VRRPLowerPrioNoAdvert),
		"vrrp_higher_prio_send_advert": p.setFlag(&g.VRRPHigherPrioSendAdv),
		"vrrp_notify_priority_changes": p.setFlag(&g.VRRPNotifyPriorityChgs),
		"v3_checksum_as_v2":            p.setConst(&g.V3ChecksumAsV2, true),
		"lvs_flush":                    p.setConst(&g.LVSFlush, true),
		"lvs_flush_onstop":             p.flushOnStop(g),
		"lvs_flush_on_stop":            p.flushOnStop(g),
		"lvs_timeouts": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 2, 6) {
				return
			}
			for i := 0; i+1 < len(n.Args); i += 2 {
				var dst *Duration
				switch n.Args[i].Text {
				case "tcp":
					dst = &g.LVSTimeouts.TCP
				case "tcpfin":
					dst = &g.LVSTimeouts.TCPFin
				case "udp":
					dst = &g.LVSTimeouts.UDP
				default:
					p.errorf(n.Args[i].Pos, "lvs_timeouts: expected tcp, tcpfin or udp, got %q", n.Args[i].Text)
					return
				}
				// keepalived: whole seconds 0..LVS_MAX_TIMEOUT.
				v, ok := p.wholeSecsTok(n, n.Args[i+1], 0, int(maxPersistence/time.Second))
				if !ok {
					return
				}
				*dst = v
			}
			if len(n.Args)%2 != 0 {
				p.errorf(n.Args[len(n.Args)-1].Pos, "lvs_timeouts: %q has no value", n.Args[len(n.Args)-1].Text)
			}
		},
		"checker_log_all_failures": p.setFlag(&g.CheckerLogAll),
	})
}

// flushOnStop reads "lvs_flush_onstop [VS]": alone it flushes all; VS is
// matched case-sensitively (keepalived global_parser.c
// lvs_flush_on_stop_handler compares with strcmp).
func (p *parser) flushOnStop(g *Global) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 0, 1) {
			return
		}
		g.LVSFlushOnStop = FlushAll
		if len(n.Args) == 1 {
			if v, ok := exactEnumOf(p, n, 0, flushOnStops, FlushVS); ok {
				g.LVSFlushOnStop = v
			}
		}
	}
}

// mcastTo reads a VRRP multicast group, which must really be a multicast
// address of the right family (RFC 3768 §5.2.2 / RFC 5798 §5.1.2.2 use
// 224.0.0.18 and ff02::12; keepalived accepts any multicast group).
func (p *parser) mcastTo(dst *netip.Addr, v4 bool) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		t := n.Args[0]
		a, ok := p.addrTok(n, t)
		if !ok {
			return
		}
		fam := "IPv6"
		if v4 {
			fam = "IPv4"
		}
		if a.Is4() != v4 {
			p.errorf(t.Pos, "%s: %s is not an %s address", n.Keyword.Text, a, fam)
			return
		}
		if !a.IsMulticast() {
			rng := "ff00::/8"
			if v4 {
				rng = "224.0.0.0/4"
			}
			p.errorf(t.Pos, "%s: %s is not a multicast address (%s multicast is %s)", n.Keyword.Text, a, fam, rng)
			return
		}
		*dst = a
	}
}
