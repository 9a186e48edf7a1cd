package config

import (
	"time"
)

// defaultStaticDev is keepalived's DFLT_INT (vrrp_ipaddress.h).
const defaultStaticDev = "eth0"

// finalize fills in keepalived's defaults and the values that cascade from
// global_defs to instances and from virtual servers to real servers to
// checkers, once the whole file is read.
func (p *parser) finalize(cfg *Config) {
	g := &cfg.Global
	if g.Garp.LowerPrioDelay < 0 {
		g.Garp.LowerPrioDelay = g.Garp.MasterDelay
	}
	if g.Garp.LowerPrioRepeat < 0 {
		g.Garp.LowerPrioRepeat = g.Garp.MasterRepeat
	}
	for _, in := range cfg.Instances {
		p.finalizeInstance(cfg, in)
	}
	p.vmacNames(cfg)
	for _, sg := range cfg.SyncGroups {
		p.resolveTracks(cfg, sg.TrackScripts, sg.TrackFiles, sg.TrackProcesses)
		resolveTrackBFD(cfg, sg.TrackBFD)
	}
	for _, vs := range cfg.VirtualServers {
		p.finalizeVS(cfg, vs)
	}
	// A static address without dev goes on default_interface, else eth0
	// (keepalived vrrp_ipaddress.c alloc_ipaddress, vrrp_if.c
	// get_default_if): resolved here so that its key names the interface.
	for _, a := range cfg.StaticAddresses {
		if a.Dev == "" {
			a.Dev = g.DefaultInterface
		}
		if a.Dev == "" {
			a.Dev = defaultStaticDev
		}
	}
	cfg.keys = computeKeys(cfg)
}

func (p *parser) finalizeInstance(cfg *Config, in *Instance) {
	g := &cfg.Global
	u := in.unset
	pick := func(local *bool, global bool) bool {
		if local != nil {
			return *local
		}
		return global
	}
	in.StrictMode = pick(u.strict, g.VRRPStrict)
	// keepalived.conf(5), accept: "the default unless strict mode is set".
	in.Accept = pick(u.accept, !in.StrictMode)
	in.SkipCheckAdv = pick(u.skipAdv, g.VRRPSkipCheckAdv)
	in.CheckUnicastSrc = pick(u.checkSrc, g.VRRPCheckUnicastSrc)
	in.LowerPrioNoAdv = pick(u.lowerNoAdv, g.VRRPLowerPrioNoAdvert)
	in.HigherPrioSend = pick(u.higherSend, g.VRRPHigherPrioSendAdv)
	in.V3ChecksumAsV2 = pick(u.v3v2, g.V3ChecksumAsV2)
	// keepalived (vrrp_init_state): with no state line the address owner
	// starts as master, everyone else as backup.
	if in.State == StateUnset {
		in.State = StateBackup
		if in.Priority == 255 {
			in.State = StateMaster
		}
	}
	p.finalizeFamily(in, g)
	if in.UnicastTTL < 0 {
		in.UnicastTTL = 0
	}
	if in.Interface == "" {
		in.Interface = g.DefaultInterface
	}
	// The garp_* of an instance default to the global vrrp_garp_* values.
	for _, f := range []struct{ dst, src *Duration }{
		{&in.Garp.MasterDelay, &g.Garp.MasterDelay},
		{&in.Garp.MasterRefresh, &g.Garp.MasterRefresh},
		{&in.Garp.LowerPrioDelay, &g.Garp.LowerPrioDelay},
	} {
		if *f.dst < 0 {
			*f.dst = *f.src
		}
	}
	for _, f := range []struct{ dst, src *int }{
		{&in.Garp.MasterRepeat, &g.Garp.MasterRepeat},
		{&in.Garp.MasterRefreshRepeat, &g.Garp.MasterRefreshRepeat},
		{&in.Garp.LowerPrioRepeat, &g.Garp.LowerPrioRepeat},
	} {
		if *f.dst < 0 {
			*f.dst = *f.src
		}
	}
	p.finalizeVMAC(in)
	p.resolveTracks(cfg, in.TrackScripts, in.TrackFiles, in.TrackProcesses)
	resolveTrackBFD(cfg, in.TrackBFD)
	p.strictInstance(g, in)
}

// resolveTracks gives track_script/track_file/track_process references
// without their own weight the weight of the tracked object's definition.
func (p *parser) resolveTracks(cfg *Config, scripts, files, procs []TrackRef) {
	for i := range scripts {
		r := &scripts[i]
		for _, s := range cfg.Scripts {
			if s.Name == r.Name && !r.WeightSet {
				r.Weight, r.Reverse = s.Weight, s.WeightReverse
			}
		}
	}
	for i := range files {
		r := &files[i]
		for _, f := range cfg.TrackFiles {
			if f.Name == r.Name && !r.WeightSet {
				r.Weight, r.Reverse = f.Weight, f.Reverse
			}
		}
	}
	for i := range procs {
		r := &procs[i]
		for _, t := range cfg.TrackProcesses {
			if t.Name == r.Name && !r.WeightSet {
				r.Weight, r.Reverse = t.Weight, t.Reverse
			}
		}
	}
}

// Checker timing defaults (keepalived check_api.c, check_http.c,
// check_misc.c, check_dns.c; check_data.c KEEPALIVED_DEFAULT_DELAY).
const (
	defaultDelayLoop      = Duration(60 * time.Second)
	defaultConnectTimeout = Duration(5 * time.Second)
)

func checkerDefaults(typ CheckType, delayLoop Duration) (retry int, dbr Duration) {
	switch typ {
	case CheckHTTP, CheckSSL:
		return 1, Duration(3 * time.Second)
	case CheckMisc:
		return 0, Duration(time.Second)
	case CheckDNS:
		return 3, delayLoop
	}
	return 1, Duration(time.Second)
}

func (p *parser) finalizeVS(cfg *Config, vs *VirtualServer) {
	g := &cfg.Global
	byIP := vs.Group == "" && vs.FWMark == 0
	if vs.Family == FamilyUnset {
		vs.Family = Inet
		if vs.IP.Is6() {
			vs.Family = Inet6
		}
	}
	// check_data.c validate_check_config: a service by address with no
	// protocol gets UDP (the kernel's meaning of 0), with a message.
	if vs.Protocol == ProtocolUnset && byIP {
		p.warnf(vs.Pos, "virtual_server %s: no protocol given; keepalived uses UDP, so does Tandem (write protocol TCP if you meant TCP)", vs.Name())
		vs.Protocol = UDP
	}
	if vs.Scheduler == SchedulerUnset {
		p.warnf(vs.Pos, "virtual_server %s: no lb_algo given; using keepalived's default wlc", vs.Name())
		vs.Scheduler = SchedulerWLC
	}
	if vs.Method == MethodUnset {
		vs.Method = NAT
	}
	if vs.Defaults.DelayLoop == nil {
		d := defaultDelayLoop
		vs.Defaults.DelayLoop = &d
	}
	if vs.Defaults.ConnectTimeout == nil {
		d := defaultConnectTimeout
		vs.Defaults.ConnectTimeout = &d
	}
	vs.SMTPAlert = First(false, vs.unset.smtpAlert, g.SMTPAlertChecker, g.SMTPAlert)
	if ss := vs.SorryServer; ss != nil && ss.Method == MethodUnset {
		ss.Method, ss.Tunnel = vs.Method, vs.Tunnel
	}
	for _, rs := range vs.RealServers {
		if rs.Weight < 0 {
			rs.Weight = vs.Weight
		}
		if rs.Method == MethodUnset {
			rs.Method, rs.Tunnel = vs.Method, vs.Tunnel
		}
		rs.Inhibit = First(vs.Inhibit, rs.unset.inhibit)
		// Real servers alert by default, unlike everything else, for
		// backwards compatibility (check_data.c).
		rs.SMTPAlert = First(true, rs.unset.smtpAlert, g.SMTPAlertChecker, g.SMTPAlert)
		p.finalizeRSPort(vs, rs)
		for _, c := range rs.Checkers {
			finalizeChecker(vs, rs, c)
		}
	}
}

// finalizeRSPort applies keepalived's port rules: with NAT a real server
// without port takes the service's; with DR and TUN the port cannot differ
// from the service's (packets are not rewritten), and fwmark services have
// no port.
func (p *parser) finalizeRSPort(vs *VirtualServer, rs *RealServer) {
	switch {
	case vs.Group != "":
	case rs.Method == NAT:
		if rs.Port == 0 && vs.FWMark == 0 {
			rs.Port = vs.Port
		}
	case vs.FWMark != 0:
		if rs.Port != 0 {
			p.warnf(rs.Pos, "real_server %s: a %s real server of a fwmark service has no port; %d ignored", rs.IP, rs.Method, rs.Port)
			rs.Port = 0
		}
	case rs.Port == 0:
		rs.Port = vs.Port
	case rs.Port != vs.Port:
		p.warnf(rs.Pos, "real_server %s: port %d differs from the virtual server's %d, which %s cannot change; using %d", rs.IP, rs.Port, vs.Port, rs.Method, vs.Port)
		rs.Port = vs.Port
	}
}

func finalizeChecker(vs *VirtualServer, rs *RealServer, c *Checker) {
	vd, rd, cd := &vs.Defaults, &rs.Defaults, &c.Set
	t := &c.Timing
	t.DelayLoop = First(*vd.DelayLoop, cd.DelayLoop, rd.DelayLoop)
	t.ConnectTimeout = First(*vd.ConnectTimeout, cd.ConnectTimeout, rd.ConnectTimeout)
	retry, dbr := checkerDefaults(c.Type, t.DelayLoop)
	t.Retry = First(retry, cd.Retry, rd.Retry, vd.Retry)
	t.DelayBeforeRetry = First(dbr, cd.DelayBeforeRetry, rd.DelayBeforeRetry, vd.DelayBeforeRetry)
	// An unset warmup is the checker's own delay_loop (check_data.c).
	t.Warmup = First(t.DelayLoop, cd.Warmup, rd.Warmup, vd.Warmup)
	t.Alpha = First(false, cd.Alpha, rd.Alpha, vd.Alpha)
	// check_api.c: a checker connects to its real server unless told
	// otherwise.
	if !c.ConnectIP.IsValid() {
		c.ConnectIP = rs.IP
	}
	if c.ConnectPort == 0 && c.Type != CheckPing && c.Type != CheckMisc && c.Type != CheckFile {
		c.ConnectPort = rs.Port
		if c.ConnectPort == 0 {
			c.ConnectPort = vs.Port
		}
	}
	if c.Misc != nil && c.Misc.Timeout == 0 {
		// check_misc.c: no misc_timeout means the service's delay_loop.
		c.Misc.Timeout = *vd.DelayLoop
	}
	if c.HTTP != nil && c.HTTP.Virtualhost == "" {
		c.HTTP.Virtualhost = firstStr(rs.Virtualhost, vs.Virtualhost)
	}
}

// First returns the first non-nil value, or def: the cascade of keepalived
// settings that are unset unless given.
func First[T any](def T, vals ...*T) T {
	for _, v := range vals {
		if v != nil {
			return *v
		}
	}
	return def
}

func firstStr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
