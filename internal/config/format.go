package config

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Format writes cfg as a canonical keepalived.conf: blocks in a fixed
// order, every value explicit (defaults included), one keyword per line,
// four-space indentation. Reading the output back gives the same model:
// parse(fmt(parse(x))) == parse(x).
func Format(w io.Writer, cfg *Config) error {
	f := &formatter{}
	f.str("net_namespace", cfg.Global.NetNamespace)
	f.global(&cfg.Global)
	f.garpGroups(cfg.GarpGroups)
	for _, s := range cfg.Scripts {
		f.script(s)
	}
	for _, t := range cfg.TrackFiles {
		f.trackFile(t)
	}
	for _, t := range cfg.TrackProcesses {
		f.trackProcess(t)
	}
	for _, b := range cfg.BFDInstances {
		f.bfdInstance(b)
	}
	// Before the static entries: they can only name a group above them.
	for _, g := range cfg.TrackGroups {
		f.open("track_group", g.Name)
		f.list("group", g.Members)
		f.close()
	}
	f.addrs("static_ipaddress", cfg.StaticAddresses)
	f.routes("static_routes", cfg.StaticRoutes)
	f.rules("static_rules", cfg.StaticRules)
	for _, g := range cfg.SyncGroups {
		f.syncGroup(g)
	}
	for _, in := range cfg.Instances {
		f.instance(in)
	}
	for _, g := range cfg.ServerGroups {
		f.serverGroup(g)
	}
	for _, vs := range cfg.VirtualServers {
		f.virtualServer(vs)
	}
	f.conntrackSync(cfg.ConntrackSync)
	f.bgp(cfg.BGP)
	_, err := io.WriteString(w, f.b.String())
	return err
}

type formatter struct {
	b     strings.Builder
	depth int
}

// line writes one keyword line; words are quoted where the lexer needs it.
func (f *formatter) line(words ...string) {
	f.b.WriteString(strings.Repeat("    ", f.depth))
	for i, w := range words {
		if i > 0 {
			f.b.WriteByte(' ')
		}
		f.b.WriteString(quote(w))
	}
	f.b.WriteByte('\n')
}

// open starts a block: "words... {".
func (f *formatter) open(words ...string) {
	f.b.WriteString(strings.Repeat("    ", f.depth))
	for _, w := range words {
		f.b.WriteString(quote(w))
		f.b.WriteByte(' ')
	}
	f.b.WriteString("{\n")
	f.depth++
}

func (f *formatter) close() {
	f.depth--
	f.b.WriteString(strings.Repeat("    ", f.depth) + "}\n")
}

// quote returns w as one token: bare if it has nothing the lexer would
// split or interpret, otherwise double-quoted with " and \ escaped.
func quote(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"\\{}#!$~@'") {
		return w
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(w) + `"`
}

// command renders a command as one string that splitCommand gives back:
// words with special characters are single-quoted, shell style.
func command(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && !strings.ContainsAny(w, " \t'\"\\") {
			out[i] = w
			continue
		}
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func (f *formatter) cmd(kw string, words []string) {
	if len(words) > 0 {
		f.line(kw, command(words))
	}
}

func (f *formatter) str(kw, v string) {
	if v != "" {
		f.line(kw, v)
	}
}

func (f *formatter) num(kw string, v int) { f.line(kw, strconv.Itoa(v)) }

func (f *formatter) dur(kw string, d Duration) { f.line(kw, d.Seconds()) }

func (f *formatter) flag(kw string, v bool) { f.line(kw, strconv.FormatBool(v)) }

// only writes a keyword that takes no argument when v is true.
func (f *formatter) only(kw string, v bool) {
	if v {
		f.line(kw)
	}
}

func (f *formatter) addr(kw string, a netip.Addr) {
	if a.IsValid() {
		f.line(kw, a.String())
	}
}

func (f *formatter) boolPtr(kw string, v *bool) {
	if v != nil {
		f.flag(kw, *v)
	}
}

func (f *formatter) garp(g *Garp, prefix string) {
	f.dur(prefix+"garp_master_delay", g.MasterDelay)
	f.num(prefix+"garp_master_repeat", g.MasterRepeat)
	f.dur(prefix+"garp_master_refresh", g.MasterRefresh)
	f.num(prefix+"garp_master_refresh_repeat", g.MasterRefreshRepeat)
	f.dur(prefix+"garp_lower_prio_delay", g.LowerPrioDelay)
	f.num(prefix+"garp_lower_prio_repeat", g.LowerPrioRepeat)
}

func (f *formatter) global(g *Global) {
	f.open("global_defs")
	f.str("router_id", g.RouterID)
	f.list("notification_email", g.NotificationEmail)
	f.str("notification_email_from", g.NotificationEmailFrom)
	if host, port, err := net.SplitHostPort(g.SMTPServer); err == nil {
		f.line("smtp_server", host, port)
	}
	f.str("smtp_helo_name", g.SMTPHeloName)
	f.dur("smtp_connect_timeout", g.SMTPConnectTimeout)
	f.boolPtr("smtp_alert", g.SMTPAlert)
	f.boolPtr("smtp_alert_vrrp", g.SMTPAlertVRRP)
	f.boolPtr("smtp_alert_checker", g.SMTPAlertChecker)
	if g.ScriptUser != "" {
		f.line(append([]string{"script_user", g.ScriptUser}, nonEmpty(g.ScriptGroup)...)...)
	}
	f.only("enable_script_security", g.EnableScriptSecurity)
	f.str("default_interface", g.DefaultInterface)
	f.only("dynamic_interfaces", g.DynamicInterfaces)
	f.addr("vrrp_mcast_group4", g.VRRPMcastGroup4)
	f.addr("vrrp_mcast_group6", g.VRRPMcastGroup6)
	f.num("vrrp_version", g.VRRPVersion)
	f.only("vrrp_strict", g.VRRPStrict)
	f.firewall(&g.Firewall)
	f.only("vrrp_skip_check_adv_addr", g.VRRPSkipCheckAdv)
	f.only("vrrp_check_unicast_src", g.VRRPCheckUnicastSrc)
	if g.VRRPStartupDelay != 0 { // 0 is "not given": keepalived refuses it
		f.dur("vrrp_startup_delay", g.VRRPStartupDelay)
	}
	if g.VMACPrefix != "" {
		f.line("vmac_prefix", g.VMACPrefix)
	}
	f.garp(&g.Garp, "vrrp_")
	// 0 is "not given": keepalived refuses an interval of 0.
	if g.VRRPGarpInterval != 0 {
		f.dur("vrrp_garp_interval", g.VRRPGarpInterval)
	}
	if g.VRRPGnaInterval != 0 {
		f.dur("vrrp_gna_interval", g.VRRPGnaInterval)
	}
	f.flag("vrrp_lower_prio_no_advert", g.VRRPLowerPrioNoAdvert)
	f.flag("vrrp_higher_prio_send_advert", g.VRRPHigherPrioSendAdv)
	f.flag("vrrp_notify_priority_changes", g.VRRPNotifyPriorityChgs)
	f.only("v3_checksum_as_v2", g.V3ChecksumAsV2)
	f.only("lvs_flush", g.LVSFlush)
	switch g.LVSFlushOnStop {
	case FlushAll:
		f.line("lvs_flush_onstop")
	case FlushVS:
		f.line("lvs_flush_onstop", g.LVSFlushOnStop.String())
	}
	var to []string
	for _, t := range []struct {
		name string
		d    Duration
	}{{"tcp", g.LVSTimeouts.TCP}, {"tcpfin", g.LVSTimeouts.TCPFin}, {"udp", g.LVSTimeouts.UDP}} {
		if t.d > 0 {
			to = append(to, t.name, t.d.Seconds())
		}
	}
	if len(to) > 0 {
		f.line(append([]string{"lvs_timeouts"}, to...)...)
	}
	f.flag("checker_log_all_failures", g.CheckerLogAll)
	f.syncDaemon(g.LVSSyncDaemon)
	f.ops(&g.Ops)
	f.close()
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func weightWords(w int, reverse bool) []string {
	out := []string{"weight", strconv.Itoa(w)}
	if reverse {
		out = append(out, "reverse")
	}
	return out
}

func (f *formatter) script(s *Script) {
	f.open("vrrp_script", s.Name)
	f.cmd("script", s.Command)
	f.dur("interval", s.Interval)
	if s.Timeout > 0 {
		f.dur("timeout", s.Timeout)
	}
	f.line(weightWords(s.Weight, s.WeightReverse)...)
	f.num("rise", s.Rise)
	f.num("fall", s.Fall)
	if s.User != "" {
		f.line(append([]string{"user", s.User}, nonEmpty(s.Group)...)...)
	}
	f.only("init_fail", s.InitFail)
	f.close()
}

func (f *formatter) trackFile(t *TrackFile) {
	f.open("vrrp_track_file", t.Name)
	f.line("file", t.File)
	f.line(weightWords(t.Weight, t.Reverse)...)
	if t.InitFile != nil {
		words := []string{"init_file", strconv.Itoa(*t.InitFile)}
		if t.InitOverwrite {
			words = append(words, "overwrite")
		}
		f.line(words...)
	}
	f.close()
}

func (f *formatter) trackProcess(t *TrackProcess) {
	f.open("vrrp_track_process", t.Name)
	f.line(append([]string{"process", t.Process}, t.Params...)...)
	switch t.ParamMatch {
	case ParamExact:
		f.line("param_match")
	case ParamInitial, ParamPartial:
		f.line("param_match", t.ParamMatch.String())
	}
	f.line(weightWords(t.Weight, t.Reverse)...)
	if t.Quorum > 0 {
		f.num("quorum", t.Quorum)
	}
	if t.QuorumMax > 0 || t.Quorum == 0 {
		f.num("quorum_max", t.QuorumMax)
	}
	f.dur("delay", t.Delay)
	f.dur("terminate_delay", t.TerminateDelay)
	f.dur("fork_delay", t.ForkDelay)
	f.only("full_command", t.FullCommand)
	f.close()
}

func (f *formatter) notify(n *Notify) {
	f.cmd("notify_master", n.Master)
	f.cmd("notify_backup", n.Backup)
	f.cmd("notify_fault", n.Fault)
	f.cmd("notify_stop", n.Stop)
	f.cmd("notify_deleted", n.Deleted)
	f.cmd("notify", n.Any)
	f.cmd("notify_master_rx_lower_pri", n.MasterRxLowPri)
}

func (f *formatter) tracks(kw string, refs []TrackRef) {
	if len(refs) == 0 {
		return
	}
	f.open(kw)
	for _, r := range refs {
		words := []string{r.Name}
		if r.WeightSet {
			words = append(words, weightWords(r.Weight, r.Reverse)...)
		}
		f.line(words...)
	}
	f.close()
}

func (f *formatter) syncGroup(g *SyncGroup) {
	f.open("vrrp_sync_group", g.Name)
	f.open("group")
	for _, m := range g.Members {
		f.line(m)
	}
	f.close()
	f.tracks("track_interface", g.TrackInterfaces)
	f.tracks("track_script", g.TrackScripts)
	f.tracks("track_file", g.TrackFiles)
	f.tracks("track_process", g.TrackProcesses)
	f.tracks("track_bfd", g.TrackBFD)
	f.notify(&g.Notify)
	f.flag("smtp_alert", g.SMTPAlert)
	f.only("global_tracking", g.GlobalTracking)
	f.only("sync_group_tracking_weight", g.TrackingWeight)
	f.flag("notify_priority_changes", g.NotifyPrioChange)
	f.close()
}

func (f *formatter) instance(in *Instance) {
	f.open("vrrp_instance", in.Name)
	f.line("state", in.State.String())
	f.str("interface", in.Interface)
	f.num("virtual_router_id", in.VRID)
	f.num("priority", in.Priority)
	f.dur("advert_int", in.AdvertInt)
	f.num("version", in.Version)
	f.addr("unicast_src_ip", in.UnicastSrcIP)
	if len(in.UnicastPeers) > 0 {
		f.open("unicast_peer")
		for _, p := range in.UnicastPeers {
			words := []string{p.Addr.String()}
			if p.MinTTL > 0 {
				words = append(words, "min_ttl", strconv.Itoa(p.MinTTL))
			}
			if p.MaxTTL > 0 {
				words = append(words, "max_ttl", strconv.Itoa(p.MaxTTL))
			}
			f.line(words...)
		}
		f.close()
	}
	if in.UnicastTTL > 0 {
		f.num("unicast_ttl", in.UnicastTTL)
	}
	f.addr("mcast_src_ip", in.McastSrcIP)
	f.addr("mcast_dst_ip", in.McastDstIP)
	f.flag("check_unicast_src", in.CheckUnicastSrc)
	f.tracks("track_interface", in.TrackInterfaces)
	f.tracks("track_script", in.TrackScripts)
	f.tracks("track_file", in.TrackFiles)
	f.tracks("track_process", in.TrackProcesses)
	f.tracks("track_bfd", in.TrackBFD)
	if in.FastFailoverBFD != nil {
		f.line("fast_failover_bfd", in.FastFailoverBFD.Name)
	}
	f.only("dont_track_primary", in.DontTrackPrimary)
	if in.Preempt {
		f.line("preempt")
	} else {
		f.line("nopreempt")
	}
	f.dur("preempt_delay", in.PreemptDelay)
	if in.HandoverDrain != nil {
		f.dur("handover_drain", *in.HandoverDrain)
	}
	if in.Accept {
		f.line("accept")
	} else {
		f.line("no_accept")
	}
	f.flag("strict_mode", in.StrictMode)
	f.flag("skip_check_adv_addr", in.SkipCheckAdv)
	f.flag("lower_prio_no_advert", in.LowerPrioNoAdv)
	f.flag("higher_prio_send_advert", in.HigherPrioSend)
	f.only("promote_secondaries", in.PromoteSecond)
	f.flag("notify_priority_changes", in.NotifyPrioChgs)
	f.flag("smtp_alert", in.SMTPAlert)
	f.flag("v3_checksum_as_v2", in.V3ChecksumAsV2)
	f.notify(&in.Notify)
	if a := in.Auth; a != nil {
		f.open("authentication")
		f.line("auth_type", a.Type.String())
		f.line("auth_pass", a.Pass)
		f.close()
	}
	f.addrs("virtual_ipaddress", in.VIPs)
	f.addrs("virtual_ipaddress_excluded", in.ExcludedVIPs)
	f.routes("virtual_routes", in.Routes)
	f.rules("virtual_rules", in.Rules)
	f.garp(&in.Garp, "")
	f.only("no_virtual_ipaddress", in.NoVirtualIPAddr)
	if v := in.VMAC; v != nil && v.IPVLAN != nil {
		words := []string{"use_ipvlan", v.Name}
		if v.IPVLAN.Addr.IsValid() {
			words = append(words, v.IPVLAN.Addr.String())
		}
		if v.IPVLAN.Mode != "" {
			words = append(words, v.IPVLAN.Mode)
		}
		f.line(words...)
	} else if v != nil {
		words := []string{"use_vmac", v.Name}
		if !slices.Equal(v.MAC, VirtualMAC(in.VRID, in.IPv6)) {
			words = append(words, v.MAC.String())
		}
		f.line(words...)
		f.only("vmac_xmit_base", v.XmitBase)
	}
	f.close()
}

// list writes a block of one word per line, if there are words.
func (f *formatter) list(kw string, words []string) {
	if len(words) == 0 {
		return
	}
	f.open(kw)
	for _, w := range words {
		f.line(w)
	}
	f.close()
}

func (f *formatter) addrs(kw string, as []*IPAddress) {
	if len(as) == 0 {
		return
	}
	f.open(kw)
	for _, a := range as {
		f.line(addressWords(a)...)
	}
	f.close()
}

func addressWords(a *IPAddress) []string {
	var w []string
	if a.Peer.IsValid() {
		w = append(w, a.Prefix.Addr().String(), "peer", netip.PrefixFrom(a.Peer, a.Prefix.Bits()).String())
	} else {
		w = append(w, a.Prefix.String())
	}
	opt := func(kw, v string) {
		if v != "" {
			w = append(w, kw, v)
		}
	}
	opt("brd", a.Broadcast.String())
	opt("dev", a.Dev)
	if a.Scope != 0 {
		opt("scope", a.Scope.String())
	}
	opt("label", a.Label)
	for _, fl := range []struct {
		kw string
		on bool
	}{{"home", a.Home}, {"-nodad", a.NoDAD}, {"mngtmpaddr", a.MngTmpAddr}, {"noprefixroute", a.NoPrefixRoute}, {"autojoin", a.AutoJoin}, {"no_track", a.NoTrack}} {
		if fl.on {
			w = append(w, fl.kw)
		}
	}
	if a.PreferredLft != nil {
		w = append(w, "preferred_lft", strconv.FormatUint(uint64(*a.PreferredLft), 10))
	}
	opt("track_group", a.TrackGroup)
	return w
}

func (f *formatter) routes(kw string, rs []*Route) {
	if len(rs) == 0 {
		return
	}
	f.open(kw)
	for _, r := range rs {
		var w []string
		if r.Type != 0 {
			w = append(w, r.Type.String())
		}
		if r.Src.IsValid() {
			w = append(w, "src", r.Src.String())
		}
		w = append(w, r.Dst.String())
		if r.Via.IsValid() {
			w = append(w, "via", r.Via.String())
		}
		if r.Dev != "" {
			w = append(w, "dev", r.Dev)
		}
		for _, kv := range []struct {
			kw string
			v  fmt.Stringer
			on bool
		}{{"scope", r.Scope, r.Scope != 0}, {"table", r.Table, r.Table != 0}, {"proto", r.Proto, r.Proto != 0}} {
			if kv.on {
				w = append(w, kv.kw, kv.v.String())
			}
		}
		if r.Metric != nil {
			w = append(w, "metric", strconv.FormatUint(uint64(*r.Metric), 10))
		}
		if r.OnLink {
			w = append(w, "onlink")
		}
		if r.TOS != 0 {
			w = append(w, "tos", r.TOS.String())
		}
		w = trackWords(w, r.NoTrack, r.TrackGroup)
		for _, nh := range r.Nexthops {
			w = append(w, "nexthop")
			if nh.Via.IsValid() {
				w = append(w, "via", nh.Via.String())
			}
			if nh.Dev != "" {
				w = append(w, "dev", nh.Dev)
			}
			if nh.Weight != 0 {
				w = append(w, "weight", strconv.Itoa(nh.Weight))
			}
			if nh.OnLink {
				w = append(w, "onlink")
			}
		}
		f.line(w...)
	}
	f.close()
}

func (f *formatter) rules(kw string, rs []*Rule) {
	if len(rs) == 0 {
		return
	}
	f.open(kw)
	for _, r := range rs {
		var w []string
		if r.Not {
			w = append(w, "not")
		}
		if r.From.IsValid() {
			w = append(w, "from", r.From.String())
		}
		if r.To.IsValid() {
			w = append(w, "to", r.To.String())
		}
		if r.Table != 0 {
			w = append(w, "table", r.Table.String())
		}
		for _, kv := range [][2]string{{"iif", r.IIF}, {"oif", r.OIF}} {
			if kv[1] != "" {
				w = append(w, kv[0], kv[1])
			}
		}
		if r.FWMark != 0 || r.FWMask != nil {
			m := "0x" + strconv.FormatUint(uint64(r.FWMark), 16)
			if r.FWMask != nil {
				m += "/0x" + strconv.FormatUint(uint64(*r.FWMask), 16)
			}
			w = append(w, "fwmark", m)
		}
		if r.TOS != 0 {
			w = append(w, "tos", r.TOS.String())
		}
		if r.Priority != nil {
			w = append(w, "priority", strconv.FormatUint(uint64(*r.Priority), 10))
		}
		w = trackWords(w, r.NoTrack, r.TrackGroup)
		f.line(w...)
	}
	f.close()
}

func (f *formatter) serverGroup(g *ServerGroup) {
	f.open("virtual_server_group", g.Name)
	for _, e := range g.Entries {
		if e.FWMark != 0 {
			w := []string{"fwmark", strconv.FormatUint(uint64(e.FWMark), 10)}
			if e.FWMarkFamily != FamilyUnset {
				w = append(w, e.FWMarkFamily.String())
			}
			f.line(w...)
			continue
		}
		ip := e.IP.String()
		if e.LastIP.IsValid() {
			if b := e.LastIP.As16(); e.LastIP.Is4() {
				ip += "-" + strconv.Itoa(int(b[15]))
			} else {
				ip += "-" + strconv.FormatUint(uint64(b[14])<<8|uint64(b[15]), 16)
			}
		}
		if e.Port != 0 {
			f.line(ip, strconv.Itoa(e.Port))
		} else {
			f.line(ip)
		}
	}
	f.close()
}

func (f *formatter) timingDefaults(t *TimingDefaults) {
	durs := []struct {
		kw string
		d  *Duration
	}{{"delay_loop", t.DelayLoop}, {"connect_timeout", t.ConnectTimeout}, {"delay_before_retry", t.DelayBeforeRetry}, {"warmup", t.Warmup}}
	for _, d := range durs {
		if d.d != nil {
			f.dur(d.kw, *d.d)
		}
	}
	if t.Retry != nil {
		f.num("retry", *t.Retry)
	}
	// A virtual server's alpha takes no value (vs_alpha_handler).
	if t.Alpha != nil && *t.Alpha {
		f.line("alpha")
	} else {
		f.boolPtr("alpha", t.Alpha)
	}
}

func (f *formatter) virtualServer(vs *VirtualServer) {
	switch {
	case vs.Group != "":
		f.open("virtual_server", "group", vs.Group)
	case vs.FWMark != 0:
		f.open("virtual_server", "fwmark", strconv.FormatUint(uint64(vs.FWMark), 10))
	default:
		f.open("virtual_server", vs.IP.String(), strconv.Itoa(vs.Port))
	}
	if !vs.IP.IsValid() {
		f.line("ip_family", vs.Family.String())
	}
	f.str("protocol", vs.Protocol.String())
	f.line("lb_algo", vs.Scheduler.String())
	for _, fl := range vs.SchedFlags.words(vs.Scheduler) {
		f.line(fl)
	}
	f.line(methodLine("lb_kind", vs.Method, vs.Tunnel)...)
	if vs.Persistence > 0 {
		f.dur("persistence_timeout", vs.Persistence)
	}
	if g := vs.Granularity; g.Is6() {
		ones, _ := net.IPMask(g.AsSlice()).Size()
		f.num("persistence_granularity", ones)
	} else if g.IsValid() {
		f.line("persistence_granularity", g.String())
	}
	f.str("persistence_engine", vs.PersistenceEngine)
	f.only("ha_suspend", vs.HASuspend)
	f.str("virtualhost", vs.Virtualhost)
	f.only("omega", vs.Omega)
	f.num("quorum", vs.Quorum)
	f.num("hysteresis", vs.Hysteresis)
	f.cmd("quorum_up", vs.QuorumUp)
	f.cmd("quorum_down", vs.QuorumDown)
	f.only("inhibit_on_failure", vs.Inhibit)
	f.flag("smtp_alert", vs.SMTPAlert)
	f.num("weight", vs.Weight)
	f.timingDefaults(&vs.Defaults)
	if ss := vs.SorryServer; ss != nil {
		f.line("sorry_server", ss.IP.String(), strconv.Itoa(ss.Port))
		f.only("sorry_server_inhibit", ss.Inhibit)
		f.line(methodLine("sorry_server_lvs_method", ss.Method, ss.Tunnel)...)
	}
	for _, rs := range vs.RealServers {
		f.realServer(rs)
	}
	f.close()
}

// methodLine is the line of method keyword kw: the method, and a TUN's
// tunnel options unless it is plain ipip.
func methodLine(kw string, m Method, t Tunnel) []string {
	out := []string{kw, m.String()}
	if m != TUN || t == (Tunnel{}) {
		return out
	}
	out = append(out, "type", t.Type.String())
	if t.Port != 0 {
		out = append(out, "port", strconv.Itoa(t.Port))
	}
	if t.Csum != TunnelNoCsum {
		out = append(out, t.Csum.String())
	}
	return out
}

func (f *formatter) realServer(rs *RealServer) {
	f.open("real_server", rs.IP.String(), strconv.Itoa(rs.Port))
	f.num("weight", rs.Weight)
	f.line(methodLine("lvs_method", rs.Method, rs.Tunnel)...)
	if rs.UThreshold > 0 {
		f.num("uthreshold", rs.UThreshold)
	}
	if rs.LThreshold > 0 {
		f.num("lthreshold", rs.LThreshold)
	}
	f.flag("inhibit_on_failure", rs.Inhibit)
	f.cmd("notify_up", rs.NotifyUp)
	f.cmd("notify_down", rs.NotifyDown)
	f.flag("smtp_alert", rs.SMTPAlert)
	f.str("virtualhost", rs.Virtualhost)
	f.timingDefaults(&rs.Defaults)
	for _, c := range rs.Checkers {
		f.checker(c)
	}
	f.close()
}

func (f *formatter) checker(c *Checker) {
	f.open(c.Type.String())
	if c.BFD != nil {
		// BFD_CHECK reads name and alpha only.
		f.line("name", c.BFD.Name)
		f.flag("alpha", c.Timing.Alpha)
		f.close()
		return
	}
	f.addr("connect_ip", c.ConnectIP)
	if c.ConnectPort != 0 {
		f.num("connect_port", c.ConnectPort)
	}
	f.addr("bindto", c.BindTo)
	if c.BindPort != 0 {
		f.num("bind_port", c.BindPort)
	}
	f.str("bind_if", c.BindIf)
	if c.FWMark != 0 {
		f.line("fwmark", strconv.FormatUint(uint64(c.FWMark), 10))
	}
	t := &c.Timing
	f.dur("delay_loop", t.DelayLoop)
	f.dur("connect_timeout", t.ConnectTimeout)
	f.num("retry", t.Retry)
	f.dur("delay_before_retry", t.DelayBeforeRetry)
	f.dur("warmup", t.Warmup)
	f.flag("alpha", t.Alpha)
	f.flag("log_all_failures", c.LogAll)
	switch {
	case c.HTTP != nil:
		h := c.HTTP
		f.line("http_protocol", h.Protocol.String())
		f.str("virtualhost", h.Virtualhost)
		f.flag("enable_sni", h.EnableSNI)
		f.str("sni_name", h.SNIName)
		if c.Type == CheckSSL {
			f.flag("tls_compliant", h.TLSCompliant)
		}
		for _, u := range h.URLs {
			f.open("url")
			f.line("path", u.Path)
			f.str("digest", u.Digest)
			codes := []string{"status_code"}
			for _, r := range u.StatusCodes {
				if r.Min == r.Max {
					codes = append(codes, strconv.Itoa(r.Min))
				} else {
					codes = append(codes, fmt.Sprintf("%d-%d", r.Min, r.Max))
				}
			}
			f.line(codes...)
			f.str("virtualhost", u.Virtualhost)
			if u.Regex != nil {
				f.line("regex", u.Regex.String())
			}
			f.only("regex_no_match", u.RegexNoMatch)
			f.only("tls_compliant", u.TLSCompliant)
			f.close()
		}
	case c.Misc != nil:
		f.cmd("misc_path", c.Misc.Command)
		f.dur("misc_timeout", c.Misc.Timeout)
		f.only("misc_dynamic", c.Misc.Dynamic)
		if c.Misc.User != "" {
			f.line(append([]string{"user", c.Misc.User}, nonEmpty(c.Misc.Group)...)...)
		}
	case c.SMTP != nil:
		f.line("helo_name", c.SMTP.HeloName)
	case c.DNS != nil:
		f.line("type", c.DNS.Type.String())
		f.line("name", c.DNS.Name)
	case c.UDP != nil:
		u := c.UDP
		if len(u.Payload) > 0 {
			f.line(append([]string{"payload"}, strings.Fields(hexWords(u.Payload, nil))...)...)
		}
		if u.RequireReply {
			f.line(append([]string{"require_reply"}, strings.Fields(hexWords(u.Reply, u.ReplyMask))...)...)
		}
		f.num("min_reply_length", u.MinReply)
		f.num("max_reply_length", u.MaxReply)
	case c.File != nil:
		f.line("track_file", c.File.TrackFile)
		if c.File.WeightSet {
			f.line(weightWords(c.File.Weight, c.File.Reverse)...)
		}
	}
	f.close()
}

func (f *formatter) bfdInstance(b *BFDInstance) {
	f.open("bfd_instance", b.Name)
	f.addr("neighbor_ip", b.Neighbor)
	f.addr("source_ip", b.Source)
	f.line("min_rx", msText(b.MinRx))
	f.line("min_tx", msText(b.MinTx))
	f.line("idle_tx", msText(b.IdleTx))
	f.num("multiplier", b.Multiplier)
	f.only("passive", b.Passive)
	f.num("ttl", b.TTL)
	f.num("max_hops", b.MaxHops)
	f.line(weightWords(b.Weight, b.WeightReverse)...)
	f.only("multihop", b.Multihop)
	f.close()
}

// trackWords appends a static route's or rule's no_track and track_group.
func trackWords(w []string, noTrack bool, group string) []string {
	if noTrack {
		w = append(w, "no_track")
	}
	if group != "" {
		w = append(w, "track_group", group)
	}
	return w
}
