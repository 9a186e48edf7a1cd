package config

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

// Limits of VRRP timing keywords. keepalived.conf(5) and vrrp_parser.c:
// advert_int is read with centisecond precision, 0.01..255 s (vrrp_adv_handler);
// VRRPv3's 12-bit centisecond field holds at most 40.95 s (RFC 5798 §5.2.7)
// and VRRPv2 carries whole seconds in 8 bits (RFC 3768 §5.3.7): both
// checked in validate.go, once the version is known.
const (
	maxAdvertIntV2  = 255 * time.Second
	maxAdvertInt    = 4095 * 10 * time.Millisecond
	maxPreemptDelay = 3600 * time.Second // keepalived: preempt_delay 0..3600 s
	// maxHandoverDrain bounds handover_drain: a drain is meant to outlast
	// the new master's gratuitous ARPs, not to keep two holders for long.
	maxHandoverDrain = 60 * time.Second
	maxScriptTime    = 24 * time.Hour
)

func defaultGarp() Garp {
	// keepalived vrrp.h: VRRP_GARP_DELAY 5 s, VRRP_GARP_REP 5,
	// VRRP_GARP_REFRESH 0 (none), VRRP_GARP_REFRESH_REP 1; the lower-priority
	// pair defaults to the master pair (global_data.c).
	return Garp{MasterDelay: Duration(5 * time.Second), MasterRepeat: 5, MasterRefreshRepeat: 1, LowerPrioDelay: -1, LowerPrioRepeat: -1}
}

func (p *parser) garpHandlers(g *Garp, prefix string) map[string]handler {
	return map[string]handler{
		// keepalived takes whole seconds for the delays and the refresh,
		// and 1..UINT_MAX repeats (0..INT_MAX for lower_prio_repeat):
		// values.go.
		prefix + "garp_master_delay":          p.setWholeSecs(&g.MasterDelay, 0, maxGarpSecs),
		prefix + "garp_master_repeat":         p.setRepeat(&g.MasterRepeat),
		prefix + "garp_master_refresh":        p.setWholeSecs(&g.MasterRefresh, 0, maxGarpRefresh),
		prefix + "garp_master_refresh_repeat": p.setRepeat(&g.MasterRefreshRepeat),
		prefix + "garp_lower_prio_delay":      p.setWholeSecs(&g.LowerPrioDelay, 0, maxGarpSecs),
		prefix + "garp_lower_prio_repeat":     p.setInt(&g.LowerPrioRepeat, 0, math.MaxInt32),
	}
}

// listBlock reads a keyword whose block is a list of items, one per line,
// each read by item (virtual_ipaddress, virtual_routes, unicast_peer, ...).
func listBlock[T any](p *parser, dst *[]T, item func(*node) (T, bool)) handler {
	return func(n *node) {
		if !p.args(n, 0, 0) {
			return
		}
		kids, ok := p.blockOf(n)
		if !ok {
			return
		}
		for _, k := range kids {
			if v, ok := item(k); ok {
				*dst = append(*dst, v)
			}
		}
	}
}

func merge(ms ...map[string]handler) map[string]handler {
	out := map[string]handler{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func (p *parser) script(n *node, cfg *Config) {
	s := &Script{Pos: n.Keyword.Pos, Interval: Duration(time.Second), Rise: 1, Fall: 1}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	s.Name = name
	p.block("vrrp_script", kids, p.scriptHandlers(s))
	if len(s.Command) == 0 {
		p.errorf(n.Keyword.Pos, "vrrp_script %s: no script given", s.Name)
	}
	cfg.Scripts = append(cfg.Scripts, s)
}

func (p *parser) scriptHandlers(s *Script) map[string]handler {
	return map[string]handler{
		"script":   p.setCmd(&s.Command),
		"interval": p.setDur(&s.Interval, time.Millisecond, maxScriptTime),
		"timeout":  p.setDur(&s.Timeout, time.Millisecond, maxScriptTime),
		// keepalived.conf(5): weight -253..253, with "reverse" to apply it on failure.
		"weight":    p.weightTo(&s.Weight, &s.WeightReverse, nil),
		"rise":      p.setInt(&s.Rise, 1, 1000000),
		"fall":      p.setInt(&s.Fall, 1, 1000000),
		"user":      p.userTo(&s.User, &s.Group),
		"init_fail": p.setConst(&s.InitFail, true),
	}
}

// weightTo reads "weight N [reverse]" with N in -253..253.
func (p *parser) weightTo(w *int, reverse, set *bool) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 2) {
			return
		}
		v, ok := p.intTok(n, n.Args[0], -253, 253)
		if !ok {
			return
		}
		if len(n.Args) == 2 {
			if n.Args[1].Text != "reverse" {
				p.errorf(n.Args[1].Pos, "%s: expected \"reverse\", got %q", n.Keyword.Text, n.Args[1].Text)
				return
			}
			*reverse = true
		}
		*w = v
		if set != nil {
			*set = true
		}
	}
}

// intTok reads a signed decimal integer in [lo, hi]; the message names
// the whole range (it used to name half of it: "-2" read as "2" not in
// 0..1).
func (p *parser) intTok(n *node, t syntax.Token, lo, hi int) (int, bool) {
	return p.uintTok(n, t, lo, hi)
}

// userTo reads "user USER [GROUP]".
func (p *parser) userTo(user, group *string) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 2) {
			return
		}
		*user = n.Args[0].Text
		if len(n.Args) == 2 {
			*group = n.Args[1].Text
		}
	}
}

func (p *parser) trackFile(n *node, cfg *Config) {
	f := &TrackFile{Pos: n.Keyword.Pos, Weight: 1}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	f.Name = name
	p.block("vrrp_track_file", kids, p.trackFileHandlers(f))
	if f.File == "" {
		p.errorf(n.Keyword.Pos, "vrrp_track_file %s: no file given", f.Name)
	}
	cfg.TrackFiles = append(cfg.TrackFiles, f)
}

func (p *parser) trackFileHandlers(f *TrackFile) map[string]handler {
	return map[string]handler{
		"file":   p.setStr(&f.File),
		"weight": p.weightTo(&f.Weight, &f.Reverse, nil),
		// "init_file [VALUE] [overwrite]" (keepalived track_file.c).
		"init_file": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 0, 2) {
				return
			}
			v := 0
			for i, a := range n.Args {
				if a.Text == "overwrite" && i == len(n.Args)-1 {
					f.InitOverwrite = true
					continue
				}
				var ok bool
				if v, ok = p.intTok(n, a, -254, 254); !ok {
					return
				}
			}
			f.InitFile = &v
		},
	}
}

func (p *parser) trackProcess(n *node, cfg *Config) {
	t := &TrackProcess{Pos: n.Keyword.Pos, Quorum: 1}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	t.Name = name
	p.block("vrrp_track_process", kids, p.trackProcessHandlers(t))
	if t.Process == "" {
		p.errorf(n.Keyword.Pos, "vrrp_track_process %s: no process given", t.Name)
	}
	if t.Quorum > 0 && t.QuorumMax != 0 && t.QuorumMax < t.Quorum {
		p.errorf(n.Keyword.Pos, "vrrp_track_process %s: quorum_max %d is below quorum %d", t.Name, t.QuorumMax, t.Quorum)
	}
	cfg.TrackProcesses = append(cfg.TrackProcesses, t)
}

func (p *parser) trackProcessHandlers(t *TrackProcess) map[string]handler {
	return map[string]handler{
		"process": func(n *node) {
			if p.noBlock(n) && p.args(n, 1, -1) {
				t.Process = n.Args[0].Text
				for _, a := range n.Args[1:] {
					t.Params = append(t.Params, a.Text)
				}
			}
		},
		// "param_match [initial|partial]": alone it asks for an exact match
		// of the parameters; any form compares the full command line
		// (vrrp_parser.c vrrp_tprocess_match_handler).
		"param_match": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 0, 1) {
				return
			}
			t.ParamMatch, t.FullCommand = ParamExact, true
			if len(n.Args) == 1 {
				if v, ok := enumOf(p, n, 0, paramMatches, ParamInitial, ParamPartial); ok {
					t.ParamMatch = v
				}
			}
		},
		"weight": p.weightTo(&t.Weight, &t.Reverse, nil),
		"quorum": p.setInt(&t.Quorum, 1, 65535),
		// quorum_max 0 means the process must not run at all, and takes
		// quorum down to 0 with it (vrrp_tprocess_quorum_max_handler).
		"quorum_max": func(n *node) {
			if v, ok := p.intArg(n, 0, 65535); ok {
				t.QuorumMax = v
				if v == 0 {
					t.Quorum = 0
				}
			}
		},
		"delay":           p.setDur(&t.Delay, 0, maxScriptTime),
		"terminate_delay": p.setDur(&t.TerminateDelay, 0, maxScriptTime),
		"fork_delay":      p.setDur(&t.ForkDelay, 0, maxScriptTime),
		"full_command":    p.setConst(&t.FullCommand, true),
	}
}

func (p *parser) notifyHandlers(nt *Notify) map[string]handler {
	return map[string]handler{
		"notify_master":              p.setCmd(&nt.Master),
		"notify_backup":              p.setCmd(&nt.Backup),
		"notify_fault":               p.setCmd(&nt.Fault),
		"notify_stop":                p.setCmd(&nt.Stop),
		"notify_deleted":             p.setCmd(&nt.Deleted),
		"notify":                     p.setCmd(&nt.Any),
		"notify_master_rx_lower_pri": p.setCmd(&nt.MasterRxLowPri),
	}
}

func (p *parser) syncGroup(n *node, cfg *Config) {
	g := &SyncGroup{Pos: n.Keyword.Pos}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	g.Name = name
	hs := merge(p.notifyHandlers(&g.Notify), p.trackHandlers(&g.TrackInterfaces, &g.TrackScripts, &g.TrackFiles, &g.TrackProcesses), map[string]handler{
		"track_bfd": p.trackBFDHandler(&g.TrackBFD),
		"group": func(n *node) {
			g.Members = append(g.Members, p.words(n)...)
		},
		"smtp_alert": p.setFlag(&g.SMTPAlert),
		// keepalived 2.x: global_tracking is deprecated and means
		// sync_group_tracking_weight (vrrp_parser.c).
		"global_tracking": func(n *node) {
			p.setConst(&g.GlobalTracking, true)(n)
			if g.GlobalTracking {
				p.warnf(n.Keyword.Pos, "global_tracking is deprecated: it means sync_group_tracking_weight; use track_interface, track_script and track_file on the sync group")
				g.TrackingWeight = true
			}
		},
		"sync_group_tracking_weight": p.setConst(&g.TrackingWeight, true),
		"notify_priority_changes": func(n *node) {
			p.setFlagPtr(&g.notifyPrio)(n)
			if g.notifyPrio != nil {
				g.NotifyPrioChange = *g.notifyPrio
			}
		},
	})
	// keepalived 1.x listed the member instances directly in the block
	// (its sample keepalived.conf.vrrp.lvs_syncd still does): a bare word
	// that is no keyword is read as a member, with a warning.
	var rest []*node
	for _, k := range kids {
		if _, known := hs[k.Keyword.Text]; known || k.HasBlock || len(k.Args) > 0 {
			rest = append(rest, k)
			continue
		}
		p.warnf(k.Keyword.Pos, "vrrp_sync_group %s: instance %s listed outside group { } (keepalived 1.x syntax); read as a member", g.Name, k.Keyword.Text)
		g.Members = append(g.Members, k.Keyword.Text)
	}
	p.block("vrrp_sync_group", rest, hs)
	if len(g.Members) == 0 {
		p.errorf(n.Keyword.Pos, "vrrp_sync_group %s: no group { ... } of instances", g.Name)
	}
	cfg.SyncGroups = append(cfg.SyncGroups, g)
}

// trackHandlers reads track_interface/script/file/process blocks. Each line
// is "NAME [weight N [reverse]]"; track_interface lines may also be
// "NAME weight N" only (no reverse for scripts and files before 2.2: accepted
// everywhere here, as current keepalived does).
func (p *parser) trackHandlers(ifs, scripts, files, procs *[]TrackRef) map[string]handler {
	list := func(dst *[]TrackRef) handler {
		return func(n *node) {
			listBlock(p, dst, func(k *node) (TrackRef, bool) { return p.trackRef(n, k, 254, false) })(n)
		}
	}
	return map[string]handler{
		"track_interface": list(ifs),
		"track_script":    list(scripts),
		"track_file":      list(files),
		"track_process":   list(procs),
	}
}

// trackRef reads one line of a track_* block: "NAME [weight N [reverse]]"
// with |N| <= lim; noreverse also takes "noreverse" (track_bfd's).
func (p *parser) trackRef(parent, k *node, lim int, noreverse bool) (TrackRef, bool) {
	r := TrackRef{Pos: k.Keyword.Pos, Name: k.Keyword.Text}
	if k.HasBlock {
		p.errorf(k.Keyword.Pos, "%s: unexpected block", parent.Keyword.Text)
		return r, false
	}
	args := k.Args
	if len(args) == 0 {
		return r, true
	}
	if args[0].Text != "weight" || len(args) < 2 || len(args) > 3 {
		p.errorf(args[0].Pos, "%s: expected \"%s [weight N [reverse]]\"", parent.Keyword.Text, r.Name)
		return r, false
	}
	w, ok := p.intTok(parent, args[1], -lim, lim)
	if !ok {
		return r, false
	}
	r.Weight, r.WeightSet = w, true
	if len(args) == 3 && noreverse {
		v, ok := p.enumTok(parent, args[2], "reverse", "noreverse")
		r.Reverse = v == "reverse"
		return r, ok
	}
	if len(args) == 3 {
		if args[2].Text != "reverse" {
			p.errorf(args[2].Pos, "%s: expected \"reverse\", got %q", parent.Keyword.Text, args[2].Text)
			return r, false
		}
		r.Reverse = true
	}
	return r, true
}

func (p *parser) instance(n *node, cfg *Config) {
	in := &Instance{Pos: n.Keyword.Pos, Priority: 100, AdvertInt: Duration(time.Second), Preempt: true, Garp: Garp{MasterDelay: -1, MasterRepeat: -1, MasterRefresh: -1, MasterRefreshRepeat: -1, LowerPrioDelay: -1, LowerPrioRepeat: -1}, Version: -1, UnicastTTL: -1}
	name, kids, ok := p.named(n)
	if !ok {
		return
	}
	in.Name = name
	u := &in.unset
	hs := merge(p.notifyHandlers(&in.Notify), p.garpHandlers(&in.Garp, ""), p.trackHandlers(&in.TrackInterfaces, &in.TrackScripts, &in.TrackFiles, &in.TrackProcesses), map[string]handler{
		"state":             setExactEnumOf(p, &in.State, initialStates),
		"track_bfd":         p.trackBFDHandler(&in.TrackBFD),
		"fast_failover_bfd": p.fastFailoverBFD(in),
		"interface":         p.setStr(&in.Interface),
		// RFC 3768 §5.3.3: VRID 1..255.
		"virtual_router_id": p.setInt(&in.VRID, 1, 255),
		// RFC 3768 §5.3.4: 1..254 for backups, 255 for the address owner.
		"priority":                  p.setInt(&in.Priority, 1, 255),
		"advert_int":                p.setDur(&in.AdvertInt, 10*time.Millisecond, maxAdvertIntV2),
		"version":                   p.setInt(&in.Version, 2, 3),
		"nopreempt":                 p.setConst(&in.Preempt, false),
		"preempt":                   p.setConst(&in.Preempt, true),
		"preempt_delay":             p.setDur(&in.PreemptDelay, 0, maxPreemptDelay),
		"handover_drain":            p.tandemOnly(p.setDurPtr(&in.HandoverDrain, 0, maxHandoverDrain)),
		"accept":                    p.setConstPtr(&u.accept, true),
		"no_accept":                 p.setConstPtr(&u.accept, false),
		"strict_mode":               p.setFlagPtr(&u.strict),
		"skip_check_adv_addr":       p.setFlagPtr(&u.skipAdv),
		"check_unicast_src":         p.setFlagPtr(&u.checkSrc),
		"lower_prio_no_advert":      p.setFlagPtr(&u.lowerNoAdv),
		"higher_prio_send_advert":   p.setFlagPtr(&u.higherSend),
		"v3_checksum_as_v2":         p.setFlagPtr(&u.v3v2),
		"dont_track_primary":        p.setConst(&in.DontTrackPrimary, true),
		"promote_secondaries":       p.setConst(&in.PromoteSecond, true),
		"notify_priority_changes":   p.setFlagPtr(&u.notifyPrio),
		"smtp_alert":                p.setFlag(&in.SMTPAlert),
		"unicast_src_ip":            p.setHostAddr(&in.UnicastSrcIP),
		"mcast_src_ip":              p.setHostAddr(&in.McastSrcIP),
		"mcast_dst_ip":              p.setAddr(&in.McastDstIP),
		"unicast_ttl":               p.setInt(&in.UnicastTTL, 1, 255),
		"no_virtual_ipaddress":      p.setConst(&in.NoVirtualIPAddr, true),
		"use_vmac":                  p.useVMAC(in),
		"use_ipvlan":                p.useIPVLAN(in),
		"vmac_xmit_base":            p.vmacXmitBase(u),
		"unicast_peer":              listBlock(p, &in.UnicastPeers, p.unicastPeer),
		"lvs_sync_daemon_interface": p.lvsSyncDaemonInterface(cfg, in),
		"authentication": func(n *node) {
			if !p.args(n, 0, 0) {
				return
			}
			kids, ok := p.blockOf(n)
			if !ok {
				return
			}
			a := &Auth{}
			p.block("authentication", kids, map[string]handler{
				"auth_type": setExactEnumOf(p, &a.Type, authTypes),
				"auth_pass": p.setStr(&a.Pass),
			})
			if a.Type == AuthUnset {
				p.errorf(n.Keyword.Pos, "authentication: auth_type PASS or AH is required")
				return
			}
			// RFC 3768 §5.3.10: the password is at most 8 bytes on the wire;
			// keepalived truncates longer ones, so the seeds' 10-byte
			// passwords meant their first 8 bytes.
			if len(a.Pass) > 8 {
				p.warnf(n.Keyword.Pos, "authentication: auth_pass %q is longer than 8 bytes; truncated to %q as the VRRP wire format requires", a.Pass, a.Pass[:8])
				a.Pass = a.Pass[:8]
			}
			in.Auth = a
		},
		"virtual_ipaddress":          p.addressBlock(&in.VIPs, false),
		"virtual_ipaddress_excluded": p.addressBlock(&in.ExcludedVIPs, false),
		"virtual_routes":             p.routeBlock(&in.Routes, false),
		"virtual_rules":              p.ruleBlock(&in.Rules, false),
	})
	p.familyFromFirst(in, hs)
	p.block("vrrp_instance", kids, hs)
	cfg.Instances = append(cfg.Instances, in)
}

// setConstPtr is setConst for a field whose nil means "not given".
func (p *parser) setConstPtr(dst **bool, v bool) handler {
	return func(n *node) {
		if p.noBlock(n) {
			p.ignoreArgsFrom(n, 0)
			*dst = &v
		}
	}
}

// unicastPeer reads "ADDR [min_ttl N] [max_ttl N]".
func (p *parser) unicastPeer(k *node) (UnicastPeer, bool) {
	u := UnicastPeer{Pos: k.Keyword.Pos}
	if k.HasBlock {
		p.errorf(k.Keyword.Pos, "unicast_peer: unexpected block")
		return u, false
	}
	a, ok := p.hostAddrTok("unicast_peer", k.Keyword)
	if !ok {
		return u, false
	}
	u.Addr = a
	args := k.Args
	for len(args) > 0 {
		if len(args) < 2 || (args[0].Text != "min_ttl" && args[0].Text != "max_ttl") {
			p.errorf(args[0].Pos, "unicast_peer: expected min_ttl N or max_ttl N, got %q", args[0].Text)
			return u, false
		}
		v, ok := p.uintTok(k, args[1], 0, 255)
		if !ok {
			return u, false
		}
		if args[0].Text == "min_ttl" {
			u.MinTTL = v
		} else {
			u.MaxTTL = v
		}
		args = args[2:]
	}
	return u, true
}

// addressBlock reads a block of addresses in `ip addr` syntax.
func (p *parser) addressBlock(dst *[]*IPAddress, static bool) handler {
	return listBlock(p, dst, func(k *node) (*IPAddress, bool) { return p.ipAddress(k, static) })
}

// parsePrefix reads ADDR or ADDR/LEN; a bare address is a host prefix.
// keepalived (parse_ipaddress) also reads IPv4 addresses with missing
// trailing octets as zeros ("192.168.200./24"): that form is accepted with a
// warning saying how it was read.
func (p *parser) parsePrefix(n *node, t syntax.Token) (netip.Prefix, bool) {
	s := t.Text
	addrPart, lenPart, hasLen := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		if fixed, ok := completeIPv4(addrPart); ok {
			a = fixed
			p.warnf(t.Pos, "%s: incomplete address %q read as %s", n.Keyword.Text, addrPart, fixed)
		} else {
			p.errorf(t.Pos, "%s: %q is not an IP address or prefix", n.Keyword.Text, s)
			return netip.Prefix{}, false
		}
	}
	if a.Zone() != "" {
		p.errorf(t.Pos, "%s: %q: zones are not allowed", n.Keyword.Text, s)
		return netip.Prefix{}, false
	}
	bits := a.BitLen()
	if hasLen {
		l, ok := p.uintTok(n, syntax.Token{Text: lenPart, Pos: t.Pos}, 0, a.BitLen())
		if !ok {
			return netip.Prefix{}, false
		}
		bits = l
	}
	return netip.PrefixFrom(a, bits), true
}

// completeIPv4 reads "a.b.c." or "a.b." with zeros for the missing octets.
func completeIPv4(s string) (netip.Addr, bool) {
	if !strings.HasSuffix(s, ".") || strings.Contains(s, ":") {
		return netip.Addr{}, false
	}
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(parts) == 0 || len(parts) > 3 {
		return netip.Addr{}, false
	}
	for len(parts) < 4 {
		parts = append(parts, "0")
	}
	a, err := netip.ParseAddr(strings.Join(parts, "."))
	return a, err == nil && a.Is4()
}

// ipAddress reads one `ip addr` line: ADDR[/LEN] [brd|broadcast B] [dev IF]
// [scope S] [label L] [peer P[/LEN]] [home] [-nodad|nodad] [mngtmpaddr]
// [noprefixroute] [autojoin] [no_track] [preferred_lft N|forever]
// (keepalived vrrp_ipaddress.c parse_ipaddress_from_str).
func (p *parser) ipAddress(k *node, static bool) (*IPAddress, bool) {
	a := &IPAddress{Pos: k.Keyword.Pos}
	if k.HasBlock {
		p.errorf(k.Keyword.Pos, "address: unexpected block")
		return nil, false
	}
	pfx, ok := p.parsePrefix(k, k.Keyword)
	if !ok {
		return nil, false
	}
	a.Prefix = pfx
	args := k.Args
	val := func(i int) (syntax.Token, bool) {
		if i+1 >= len(args) {
			p.errorf(args[i].Pos, "address %s: %s needs a value", k.Keyword.Text, args[i].Text)
			return syntax.Token{}, false
		}
		return args[i+1], true
	}
	for i := 0; i < len(args); i++ {
		t := args[i]
		switch t.Text {
		case "dev", "scope", "brd", "broadcast", "label", "peer", "preferred_lft":
			v, ok := val(i)
			if !ok {
				return nil, false
			}
			i++
			switch t.Text {
			case "dev":
				if a.Dev != "" {
					p.errorf(t.Pos, "address %s: dev given twice", k.Keyword.Text)
					return nil, false
				}
				a.Dev = v.Text
			case "scope":
				s, ok := p.rtTok("address "+k.Keyword.Text, kindScope, v)
				if !ok {
					return nil, false
				}
				a.Scope = Scope(s)
			case "brd", "broadcast":
				if pfx.Addr().Is6() {
					p.errorf(t.Pos, "address %s: IPv6 addresses have no broadcast", k.Keyword.Text)
					return nil, false
				}
				switch v.Text {
				case "+":
					a.Broadcast = Broadcast{Auto: true}
				case "-":
					a.Broadcast = Broadcast{None: true}
				default:
					b, err := netip.ParseAddr(v.Text)
					if err != nil || !b.Is4() {
						p.errorf(v.Pos, "address %s: broadcast %q is not an IPv4 address, + or -", k.Keyword.Text, v.Text)
						return nil, false
					}
					a.Broadcast = Broadcast{Addr: b}
				}
			case "label":
				a.Label = v.Text
			case "peer":
				pp, ok := p.parsePrefix(k, v)
				if !ok {
					return nil, false
				}
				if pp.Addr().Is4() != pfx.Addr().Is4() {
					p.errorf(v.Pos, "address %s: peer %s is of another address family", k.Keyword.Text, v.Text)
					return nil, false
				}
				if pfx.Bits() != pfx.Addr().BitLen() {
					p.errorf(v.Pos, "address %s: a prefix length cannot be given with a peer; give it on the peer", k.Keyword.Text)
					return nil, false
				}
				a.Peer = pp.Addr()
				a.Prefix = netip.PrefixFrom(pfx.Addr(), pp.Bits())
			case "preferred_lft":
				if v.Text != "forever" {
					n, ok := p.uintTok(k, v, 0, 1<<32-1)
					if !ok {
						return nil, false
					}
					u := uint32(n)
					a.PreferredLft = &u
				}
			}
		case "home":
			a.Home = true
		case "-nodad", "nodad":
			a.NoDAD = true
		case "mngtmpaddr":
			a.MngTmpAddr = true
		case "noprefixroute":
			a.NoPrefixRoute = true
		case "autojoin":
			a.AutoJoin = true
		case "no_track":
			a.NoTrack = true
		case "track_group":
			if static {
				if !p.staticTrackGroup("address "+k.Keyword.Text, true, &a.TrackGroup, args, i) {
					return nil, false
				}
				i++
				continue
			}
			fallthrough
		default:
			opts := []string{"dev", "scope", "brd", "broadcast", "label", "peer", "home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track", "preferred_lft"}
			msg := "address " + k.Keyword.Text + ": unknown option \"" + t.Text + "\""
			if s := suggest(t.Text, opts); s != "" {
				msg += "; did you mean \"" + s + "\"?"
			}
			p.errorf(t.Pos, "%s", msg)
			return nil, false
		}
	}
	if a.Broadcast.Auto {
		// After the loop: a peer given after brd sets the prefix length.
		a.Broadcast.Addr = broadcastOf(a.Prefix)
	}
	return a, true
}

// broadcastOf is the IPv4 prefix with its host bits set (`brd +`).
func broadcastOf(pfx netip.Prefix) netip.Addr {
	b := pfx.Masked().Addr().As4()
	host := ^uint32(0) >> pfx.Bits()
	for i := range b {
		b[i] |= byte(host >> (24 - 8*i))
	}
	return netip.AddrFrom4(b)
}

// routeBlock reads a block of routes; static ones (static_routes) may
// name a track_group.
func (p *parser) routeBlock(dst *[]*Route, static bool) handler {
	return listBlock(p, dst, func(k *node) (*Route, bool) { return p.route(k, static) })
}

// parseRoutePrefix also accepts "default" (0.0.0.0/0).
func (p *parser) parseRoutePrefix(k *node, t syntax.Token) (netip.Prefix, bool) {
	switch t.Text {
	case "default", "any", "all":
		return netip.MustParsePrefix("0.0.0.0/0"), true
	case "default6":
		return netip.MustParsePrefix("::/0"), true
	}
	return p.parsePrefix(k, t)
}

// ruleBlock reads a block of rules; static ones may name a track_group.
func (p *parser) ruleBlock(dst *[]*Rule, static bool) handler {
	return listBlock(p, dst, func(k *node) (*Rule, bool) { return p.rule(k, static) })
}

// rule reads one `ip rule` line: [not] [from P] [to P] [table|lookup T]
// [priority|preference|pref N] [iif IF] [oif IF] [fwmark M] [tos T]
// [no_track] (keepalived vrrp_iprule.c).
func (p *parser) rule(k *node, static bool) (*Rule, bool) {
	r := &Rule{Pos: k.Keyword.Pos}
	if k.HasBlock {
		p.errorf(k.Keyword.Pos, "rule: unexpected block")
		return nil, false
	}
	var tosTok syntax.Token
	toks := append([]syntax.Token{k.Keyword}, k.Args...)
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.Text {
		case "not":
			r.Not = true
			continue
		case "no_track":
			r.NoTrack = true
			continue
		case "track_group":
			if !p.staticTrackGroup("rule", static, &r.TrackGroup, toks, i) {
				return nil, false
			}
			i++
			continue
		}
		if i+1 >= len(toks) {
			p.errorf(t.Pos, "rule: %s needs a value", t.Text)
			return nil, false
		}
		i++
		v := toks[i]
		switch t.Text {
		case "from", "to":
			pfx, ok := p.parseRoutePrefix(k, v)
			if !ok {
				return nil, false
			}
			if t.Text == "from" {
				r.From = pfx
			} else {
				r.To = pfx
			}
		case "table", "lookup":
			n, ok := p.rtTok("rule", kindTable, v)
			if !ok {
				return nil, false
			}
			r.Table = RouteTable(n)
		case "priority", "preference", "pref", "order":
			m, ok := p.uintTok(k, v, 0, 1<<32-1)
			if !ok {
				return nil, false
			}
			u := uint32(m)
			r.Priority = &u
		case "iif", "dev":
			r.IIF = v.Text
		case "oif":
			r.OIF = v.Text
		case "fwmark":
			if !p.fwmark(r, v) {
				return nil, false
			}
		case "tos", "dsfield":
			n, ok := p.rtTok("rule", kindDSField, v)
			if !ok {
				return nil, false
			}
			r.TOS, tosTok = DSField(n), v
		default:
			p.errorf(t.Pos, "rule: unknown or unsupported option %q", t.Text)
			return nil, false
		}
	}
	if r.TOS != 0 && !p.ruleTOS(r, tosTok) {
		return nil, false
	}
	return r, true
}

// ruleTOS checks a rule's tos against what the kernel's fib rules take
// (fib_rules.c, fib4_rules.c; measured on Linux 6.18): the two ECN bits
// must be 0 in any family, and an IPv4 rule (the family netlink gives a
// rule without an IPv6 from or to) matches only RFC 1349's TOS bits: 0x1e,
// of which 0x02 is now ECN's, leaving 0x1c.
func (p *parser) ruleTOS(r *Rule, t syntax.Token) bool {
	v6 := r.From.Addr().Is6() || r.To.Addr().Is6()
	switch {
	case r.TOS&0x03 != 0:
		p.errorf(t.Pos, "rule: tos %s (%s) has ECN bits set; the kernel refuses them", t.Text, r.TOS)
		return false
	case !v6 && r.TOS&^0x1c != 0:
		p.errorf(t.Pos, "rule: tos %s (%s): an IPv4 rule matches only the TOS bits 0x1c; the kernel refuses other bits", t.Text, r.TOS)
		return false
	}
	return true
}

// fwmark reads a rule's `fwmark MARK[/MASK]`, each a 32-bit number in C's
// notations (decimal, 0x hex, 0 octal), as `ip rule` and keepalived's
// vrrp_iprule.c take them.
func (p *parser) fwmark(r *Rule, v syntax.Token) bool {
	num := func(s string) (uint32, bool) {
		n, err := strconv.ParseUint(s, 0, 32)
		return uint32(n), err == nil && !strings.Contains(s, "_")
	}
	mark, mask, hasMask := strings.Cut(v.Text, "/")
	m, ok := num(mark)
	if !ok {
		p.errorf(v.Pos, "rule: fwmark %q is not a 32-bit number (decimal or 0x hex), optionally /MASK", v.Text)
		return false
	}
	r.FWMark = m
	if hasMask {
		k, ok := num(mask)
		if !ok {
			p.errorf(v.Pos, "rule: fwmark mask %q is not a 32-bit number (decimal or 0x hex)", mask)
			return false
		}
		r.FWMask = &k
	}
	return true
}
