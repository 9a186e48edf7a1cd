// Package config reads a keepalived.conf into one typed, validated model with
// keepalived's defaults filled in. Package syntax does the text (lexer,
// preprocessor, blocks); this package gives the keywords their meaning.
package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tandem/internal/config/syntax"
)

// Pos is a position in a configuration file.
type Pos = syntax.Pos

// Config is a whole keepalived.conf.
type Config struct {
	Global          Global           `json:"global"`
	Scripts         []*Script        `json:"vrrp_scripts"`
	TrackFiles      []*TrackFile     `json:"vrrp_track_files"`
	TrackProcesses  []*TrackProcess  `json:"vrrp_track_processes"`
	SyncGroups      []*SyncGroup     `json:"vrrp_sync_groups"`
	Instances       []*Instance      `json:"vrrp_instances"`
	StaticAddresses []*IPAddress     `json:"static_ipaddress"`
	StaticRoutes    []*Route         `json:"static_routes"`
	StaticRules     []*Rule          `json:"static_rules"`
	ServerGroups    []*ServerGroup   `json:"virtual_server_groups"`
	VirtualServers  []*VirtualServer `json:"virtual_servers"`
	GarpGroups      []*GarpGroup     `json:"garp_groups,omitempty"`
	// ConntrackSync is the Tandem block conntrack_sync; nil without one.
	ConntrackSync *ConntrackSync `json:"conntrack_sync,omitempty"`
	BFDInstances  []*BFDInstance `json:"bfd_instances,omitempty"`
	TrackGroups   []*TrackGroup  `json:"track_groups,omitempty"`
	// BGP is the Tandem block bgp; nil without one.
	BGP *BGP `json:"bgp,omitempty"`

	// keys are the objects' stable identities (keys.go).
	keys keyIndex
}

// Duration is a time.Duration that reads and writes as keepalived's decimal
// seconds ("1", "0.1") in configuration files and as Go's "1s" in JSON.
type Duration time.Duration

// MarshalText gives Go's duration notation, so dumps are readable.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// Seconds formats d as keepalived writes it: decimal seconds, no trailing
// zeros. It is exact (integer arithmetic): going through float64 gave
// "3.7199999999999998" for 3.72 s, which parseSeconds rightly rejects.
func (d Duration) Seconds() string {
	n := uint64(d)
	sign := ""
	if d < 0 {
		sign, n = "-", -n
	}
	s := sign + strconv.FormatUint(n/uint64(time.Second), 10)
	if frac := n % uint64(time.Second); frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
	}
	return s
}

// Global is the global_defs block.
type Global struct {
	Pos                   Pos      `json:"-"`
	RouterID              string   `json:"router_id,omitempty"`
	NotificationEmail     []string `json:"notification_email,omitempty"`
	NotificationEmailFrom string   `json:"notification_email_from,omitempty"`
	// SMTPServer is host or address with its port (default 25).
	SMTPServer         string   `json:"smtp_server,omitempty"`
	SMTPHeloName       string   `json:"smtp_helo_name,omitempty"`
	SMTPConnectTimeout Duration `json:"smtp_connect_timeout"`
	// SMTPAlert, SMTPAlertVRRP and SMTPAlertChecker are tri-state in
	// keepalived: unset means "follow the more general setting".
	SMTPAlert            *bool  `json:"smtp_alert,omitempty"`
	SMTPAlertVRRP        *bool  `json:"smtp_alert_vrrp,omitempty"`
	SMTPAlertChecker     *bool  `json:"smtp_alert_checker,omitempty"`
	ScriptUser           string `json:"script_user,omitempty"`
	ScriptGroup          string `json:"script_group,omitempty"`
	EnableScriptSecurity bool   `json:"enable_script_security"`
	DefaultInterface     string `json:"default_interface,omitempty"`
	DynamicInterfaces    bool   `json:"dynamic_interfaces"`

	VRRPMcastGroup4     netip.Addr `json:"vrrp_mcast_group4"`
	VRRPMcastGroup6     netip.Addr `json:"vrrp_mcast_group6"`
	VRRPVersion         int        `json:"vrrp_version"`
	VRRPStrict          bool       `json:"vrrp_strict"`
	Firewall            Firewall   `json:"firewall"`
	VRRPSkipCheckAdv    bool       `json:"vrrp_skip_check_adv_addr"`
	VRRPCheckUnicastSrc bool       `json:"vrrp_check_unicast_src"`
	VRRPStartupDelay    Duration   `json:"vrrp_startup_delay"`
	Garp                Garp       `json:"garp"`

	// VMACPrefix names the VMAC interfaces use_vmac creates (default "vrrp").
	VMACPrefix string `json:"vmac_prefix,omitempty"`

	// VRRPGarpInterval and VRRPGnaInterval space out the gratuitous ARPs
	// and unsolicited NAs sent on one interface (0 = not given, no
	// spacing; given, 1 µs .. 4294.967295 s as keepalived reads them).
	VRRPGarpInterval      Duration `json:"vrrp_garp_interval"`
	VRRPGnaInterval       Duration `json:"vrrp_gna_interval"`
	VRRPLowerPrioNoAdvert bool     `json:"vrrp_lower_prio_no_advert"`
	// VRRPHigherPrioSendAdv defaults to true in Tandem (keepalived:
	// false); see defaultGlobal.
	VRRPHigherPrioSendAdv  bool `json:"vrrp_higher_prio_send_advert"`
	VRRPNotifyPriorityChgs bool `json:"vrrp_notify_priority_changes"`
	V3ChecksumAsV2         bool `json:"v3_checksum_as_v2"`

	LVSFlush       bool        `json:"lvs_flush"`
	LVSFlushOnStop FlushOnStop `json:"lvs_flush_onstop,omitempty"`
	LVSTimeouts    LVSTimeouts `json:"lvs_timeouts"`
	CheckerLogAll  bool        `json:"checker_log_all_failures"`
	// LVSSyncDaemon is nil unless lvs_sync_daemon (or an instance's
	// lvs_sync_daemon_interface) is set.
	LVSSyncDaemon *LVSSyncDaemon `json:"lvs_sync_daemon,omitempty"`

	Ops
}

// LVSTimeouts are the IPVS connection timeouts (0 = leave the kernel's).
type LVSTimeouts struct {
	TCP    Duration `json:"tcp"`
	TCPFin Duration `json:"tcpfin"`
	UDP    Duration `json:"udp"`
}

// Garp holds the gratuitous ARP / unsolicited NA timing of keepalived's
// garp_* keywords (global vrrp_garp_* defaults, per-instance overrides).
type Garp struct {
	// MasterDelay is the delay after becoming master before the second
	// burst of gratuitous ARPs (keepalived default 5 s).
	MasterDelay Duration `json:"master_delay"`
	// MasterRepeat is how many gratuitous ARPs each burst sends (default 5).
	MasterRepeat int `json:"master_repeat"`
	// MasterRefresh is the period of refresh bursts while master (0 = none).
	MasterRefresh Duration `json:"master_refresh"`
	// MasterRefreshRepeat is how many ARPs each refresh burst sends (default 1).
	MasterRefreshRepeat int `json:"master_refresh_repeat"`
	// LowerPrioDelay and LowerPrioRepeat apply when a master hears a
	// lower-priority advertisement (defaults: MasterDelay, MasterRepeat).
	LowerPrioDelay  Duration `json:"lower_prio_delay"`
	LowerPrioRepeat int      `json:"lower_prio_repeat"`
}

// Script is a vrrp_script block.
type Script struct {
	Pos  Pos    `json:"-"`
	Name string `json:"name"`
	// Command is the script line split into words (run without a shell).
	Command  []string `json:"command"`
	Interval Duration `json:"interval"`
	Timeout  Duration `json:"timeout"`
	Weight   int      `json:"weight"`
	// WeightReverse makes the weight apply while the script fails.
	WeightReverse bool   `json:"weight_reverse"`
	Rise          int    `json:"rise"`
	Fall          int    `json:"fall"`
	User          string `json:"user,omitempty"`
	Group         string `json:"group,omitempty"`
	InitFail      bool   `json:"init_fail"`
}

// TrackFile is a vrrp_track_file block: a file holding a number that is
// multiplied by the weight and added to the tracking instances' priority.
type TrackFile struct {
	Pos      Pos    `json:"-"`
	Name     string `json:"name"`
	File     string `json:"file"`
	Weight   int    `json:"weight"`
	Reverse  bool   `json:"weight_reverse"`
	InitFile *int   `json:"init_file,omitempty"`
	// InitOverwrite rewrites the file with InitFile at start even if it exists.
	InitOverwrite bool `json:"init_overwrite"`
}

// TrackProcess is a vrrp_track_process block.
type TrackProcess struct {
	Pos     Pos      `json:"-"`
	Name    string   `json:"name"`
	Process string   `json:"process"`
	Params  []string `json:"params,omitempty"`
	// ParamMatch is unset (parameters, if given, compared exactly),
	// exact, initial or partial.
	ParamMatch ParamMatch `json:"param_match,omitempty"`
	Weight     int        `json:"weight"`
	Reverse    bool       `json:"weight_reverse"`
	Quorum     int        `json:"quorum"`
	// QuorumMax 0 means no maximum, except with Quorum 0 (quorum_max 0):
	// then no matching process may run.
	QuorumMax int `json:"quorum_max"`
	// Delay applies to both process start and termination, unless the
	// specific TerminateDelay or ForkDelay is set.
	Delay          Duration `json:"delay"`
	TerminateDelay Duration `json:"terminate_delay"`
	ForkDelay      Duration `json:"fork_delay"`
	FullCommand    bool     `json:"full_command"`
}

// Notify holds the notify scripts of an instance or sync group, each split
// into words.
type Notify struct {
	Master         []string `json:"master,omitempty"`
	Backup         []string `json:"backup,omitempty"`
	Fault          []string `json:"fault,omitempty"`
	Stop           []string `json:"stop,omitempty"`
	Deleted        []string `json:"deleted,omitempty"`
	Any            []string `json:"notify,omitempty"`
	MasterRxLowPri []string `json:"master_rx_lower_pri,omitempty"`
}

// SyncGroup is a vrrp_sync_group block: instances that change state together.
type SyncGroup struct {
	Pos              Pos        `json:"-"`
	Name             string     `json:"name"`
	Members          []string   `json:"group"`
	TrackInterfaces  []TrackRef `json:"track_interface,omitempty"`
	TrackScripts     []TrackRef `json:"track_script,omitempty"`
	TrackFiles       []TrackRef `json:"track_file,omitempty"`
	TrackProcesses   []TrackRef `json:"track_process,omitempty"`
	TrackBFD         []TrackRef `json:"track_bfd,omitempty"`
	Notify           Notify     `json:"notify"`
	SMTPAlert        bool       `json:"smtp_alert"`
	GlobalTracking   bool       `json:"global_tracking"`
	TrackingWeight   bool       `json:"sync_group_tracking_weight"`
	NotifyPrioChange bool       `json:"notify_priority_changes"`

	// notifyPrio is notify_priority_changes if given (vrrpmodes.go).
	notifyPrio *bool
}

// TrackRef names a tracked object with the weight it adds to (or, for
// Reverse, subtracts from) the priority. A weight of 0 means a failure puts
// the instance in FAULT.
type TrackRef struct {
	Pos     Pos    `json:"-"`
	Name    string `json:"name"`
	Weight  int    `json:"weight"`
	Reverse bool   `json:"reverse"`
	// WeightSet records an explicit weight (scripts and files otherwise use
	// the weight of their own definition).
	WeightSet bool `json:"weight_set"`
}

// Auth is an instance's VRRPv2 authentication.
type Auth struct {
	Type AuthType `json:"type"`
	// Pass is at most 8 bytes, as the wire format holds (RFC 2338 §5.3.10).
	Pass string `json:"pass"`
}

// Instance is a vrrp_instance block.
type Instance struct {
	Pos       Pos          `json:"-"`
	Name      string       `json:"name"`
	State     InitialState `json:"state"`
	Interface string       `json:"interface"`
	VRID      int          `json:"virtual_router_id"`
	Priority  int          `json:"priority"`
	// AdvertInt is whole seconds for VRRPv2, centiseconds for VRRPv3.
	AdvertInt    Duration      `json:"advert_int"`
	Version      int           `json:"version"`
	IPv6         bool          `json:"ipv6"`
	UnicastSrcIP netip.Addr    `json:"unicast_src_ip,omitzero"`
	UnicastPeers []UnicastPeer `json:"unicast_peer,omitempty"`
	UnicastTTL   int           `json:"unicast_ttl,omitempty"`
	McastSrcIP   netip.Addr    `json:"mcast_src_ip,omitzero"`
	McastDstIP   netip.Addr    `json:"mcast_dst_ip,omitzero"`
	// CheckUnicastSrc drops unicast adverts whose source is not a peer.
	CheckUnicastSrc bool `json:"check_unicast_src"`

	TrackInterfaces []TrackRef `json:"track_interface,omitempty"`
	TrackScripts    []TrackRef `json:"track_script,omitempty"`
	TrackFiles      []TrackRef `json:"track_file,omitempty"`
	TrackProcesses  []TrackRef `json:"track_process,omitempty"`
	TrackBFD        []TrackRef `json:"track_bfd,omitempty"`
	// FastFailoverBFD (Tandem's fast_failover_bfd, not keepalived's)
	// names a bfd_instance whose neighbor is the peer director: when it
	// goes down while this instance is backup to that neighbor, the
	// backup acts as if Master_Down_Timer had expired.
	FastFailoverBFD  *TrackRef `json:"fast_failover_bfd,omitempty"`
	DontTrackPrimary bool      `json:"dont_track_primary"`

	Preempt      bool     `json:"preempt"`
	PreemptDelay Duration `json:"preempt_delay"`
	// HandoverDrain is Tandem's handover_drain: how long a master that
	// another router took over from while it still works (a handover, a
	// preempting backup) keeps its addresses to forward what still
	// reaches it, without answering ARP for them (make-before-break).
	// nil: the default, garp_master_delay + 1 s; 0 removes them at once.
	HandoverDrain *Duration `json:"handover_drain,omitempty"`
	Accept        bool      `json:"accept"`
	// StrictMode applies RFC conformance (vrrp_strict) to this instance.
	StrictMode      bool         `json:"strict_mode"`
	SkipCheckAdv    bool         `json:"skip_check_adv_addr"`
	LowerPrioNoAdv  bool         `json:"lower_prio_no_advert"`
	HigherPrioSend  bool         `json:"higher_prio_send_advert"`
	PromoteSecond   bool         `json:"promote_secondaries"`
	NotifyPrioChgs  bool         `json:"notify_priority_changes"`
	SMTPAlert       bool         `json:"smtp_alert"`
	V3ChecksumAsV2  bool         `json:"v3_checksum_as_v2"`
	Notify          Notify       `json:"notify"`
	Auth            *Auth        `json:"authentication,omitempty"`
	VIPs            []*IPAddress `json:"virtual_ipaddress"`
	ExcludedVIPs    []*IPAddress `json:"virtual_ipaddress_excluded,omitempty"`
	Routes          []*Route     `json:"virtual_routes,omitempty"`
	Rules           []*Rule      `json:"virtual_rules,omitempty"`
	Garp            Garp         `json:"garp"`
	SyncGroup       string       `json:"sync_group,omitempty"`
	NoVirtualIPAddr bool         `json:"no_virtual_ipaddress"`

	// VMAC is use_vmac; nil when the instance's own interface carries
	// its addresses.
	VMAC *VMAC `json:"use_vmac,omitempty"`

	// unset holds the keywords whose default comes from global_defs,
	// resolved once the whole file is read (global_defs may come last).
	unset instanceUnset
}

type instanceUnset struct {
	accept, strict, skipAdv, checkSrc, lowerNoAdv, higherSend, v3v2 *bool
	// notifyPrio is notify_priority_changes, resolved against the sync
	// group's and the global setting (vrrpmodes.go).
	notifyPrio *bool

	xmitBase *Pos // vmac_xmit_base, where it was given
	// ipv6 is the family of the first address written in the block that
	// decides it (family.go); nil when none does.
	ipv6 *bool
}

// UnicastPeer is one unicast_peer entry.
type UnicastPeer struct {
	Pos  Pos        `json:"-"`
	Addr netip.Addr `json:"addr"`
	// MinTTL and MaxTTL bound the TTL accepted from this peer (0 = unset).
	MinTTL int `json:"min_ttl,omitempty"`
	MaxTTL int `json:"max_ttl,omitempty"`
}

// IPAddress is one address in `ip addr` syntax (virtual_ipaddress,
// virtual_ipaddress_excluded, static_ipaddress).
type IPAddress struct {
	Pos           Pos          `json:"-"`
	Prefix        netip.Prefix `json:"address"`
	Broadcast     Broadcast    `json:"broadcast,omitzero"`
	Dev           string       `json:"dev,omitempty"`
	Scope         Scope        `json:"scope,omitempty"`
	Label         string       `json:"label,omitempty"`
	Peer          netip.Addr   `json:"peer,omitzero"`
	Home          bool         `json:"home,omitempty"`
	NoDAD         bool         `json:"nodad,omitempty"`
	MngTmpAddr    bool         `json:"mngtmpaddr,omitempty"`
	NoPrefixRoute bool         `json:"noprefixroute,omitempty"`
	AutoJoin      bool         `json:"autojoin,omitempty"`
	NoTrack       bool         `json:"no_track,omitempty"`
	// TrackGroup names the track_group whose instances track this static
	// address's dev (trackgroup.go).
	TrackGroup string `json:"track_group,omitempty"`
	// PreferredLft is in seconds; nil means forever.
	PreferredLft *uint32 `json:"preferred_lft,omitempty"`
}

// Broadcast is an IPv4 address's brd/broadcast option: an address, "+"
// (the prefix with its host bits set, computed at load) or "-" (none).
type Broadcast struct {
	// Addr is the broadcast address to set (given, or computed for "+");
	// invalid when none was given or for "-".
	Addr netip.Addr
	// Auto is "+"; None is "-".
	Auto, None bool
}

// String is the option's value as written in a configuration ("" when
// not given).
func (b Broadcast) String() string {
	switch {
	case b.None:
		return "-"
	case b.Auto:
		return "+"
	case b.Addr.IsValid():
		return b.Addr.String()
	}
	return ""
}

// MarshalText writes the option as the configuration does.
func (b Broadcast) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Route is one route in `ip route` syntax (virtual_routes, static_routes).
type Route struct {
	Pos Pos `json:"-"`
	// Type is 0 (unicast) or blackhole, unreachable, prohibit, throw.
	Type RouteType    `json:"type,omitempty"`
	Dst  netip.Prefix `json:"to"`
	Src  netip.Addr   `json:"src,omitzero"`
	Via  netip.Addr   `json:"via,omitzero"`
	// Nexthops are a multipath route's `nexthop` groups (then Via is not
	// given); "via A or B" is read as two.
	Nexthops []Nexthop `json:"nexthops,omitempty"`
	// TOS is the IPv4 route's tos/dsfield selector.
	TOS    DSField    `json:"tos,omitempty"`
	Dev    string     `json:"dev,omitempty"`
	Scope  Scope      `json:"scope,omitempty"`
	Table  RouteTable `json:"table,omitempty"`
	Metric *uint32    `json:"metric,omitempty"`
	Proto  RouteProto `json:"proto,omitempty"`
	OnLink bool       `json:"onlink,omitempty"`
	// NoTrack: a static route deleted by someone else is not put back
	// (keepalived restores the others); TrackGroup names the track_group
	// whose instances track its dev (trackgroup.go).
	NoTrack    bool   `json:"no_track,omitempty"`
	TrackGroup string `json:"track_group,omitempty"`
}

// Nexthop is one `nexthop via A [dev IF] [weight N] [onlink]` group of
// a multipath route.
type Nexthop struct {
	Via netip.Addr `json:"via"`
	Dev string     `json:"dev,omitempty"`
	// Weight is 1..256 (0: not given, the kernel's 1).
	Weight int  `json:"weight,omitempty"`
	OnLink bool `json:"onlink,omitempty"`
}

// Rule is one policy-routing rule in `ip rule` syntax.
type Rule struct {
	Pos      Pos          `json:"-"`
	Not      bool         `json:"not,omitempty"`
	From     netip.Prefix `json:"from,omitzero"`
	To       netip.Prefix `json:"to,omitzero"`
	Table    RouteTable   `json:"table,omitempty"`
	Priority *uint32      `json:"priority,omitempty"`
	IIF      string       `json:"iif,omitempty"`
	OIF      string       `json:"oif,omitempty"`
	// FWMark is matched under FWMask (nil: all bits, the kernel's default
	// when `fwmark M` has no /MASK); a rule with neither matches any mark.
	FWMark uint32  `json:"fwmark,omitempty"`
	FWMask *uint32 `json:"fwmask,omitempty"`
	TOS    DSField `json:"tos,omitempty"`
	// NoTrack and TrackGroup as for a Route; a rule's tracked interface
	// is its iif.
	NoTrack    bool   `json:"no_track,omitempty"`
	TrackGroup string `json:"track_group,omitempty"`
}

// ServerGroup is a virtual_server_group block.
type ServerGroup struct {
	Pos     Pos                `json:"-"`
	Name    string             `json:"name"`
	Entries []ServerGroupEntry `json:"entries"`
}

// ServerGroupEntry is an address (or address range) with a port, or a fwmark.
type ServerGroupEntry struct {
	Pos Pos        `json:"-"`
	IP  netip.Addr `json:"ip,omitzero"`
	// LastIP ends an address range (keepalived's "10.0.0.1-10" form).
	LastIP netip.Addr `json:"last_ip,omitzero"`
	Port   int        `json:"port,omitempty"`
	FWMark uint32     `json:"fwmark,omitempty"`
	// FWMarkFamily is the family a fwmark entry serves ("fwmark N inet6");
	// FamilyUnset takes the virtual server's.
	FWMarkFamily Family `json:"fwmark_family,omitzero"`
}

// VirtualServer is a virtual_server block.
type VirtualServer struct {
	Pos Pos `json:"-"`
	// Exactly one of IP (with Port), FWMark or Group identifies the service.
	IP     netip.Addr `json:"ip,omitzero"`
	Port   int        `json:"port"`
	FWMark uint32     `json:"fwmark,omitempty"`
	Group  string     `json:"group,omitempty"`
	// Family is Inet or Inet6; for fwmark services it comes from ip_family.
	Family Family `json:"family"`
	// Protocol is unset for fwmark services.
	Protocol  Protocol  `json:"protocol"`
	Scheduler Scheduler `json:"scheduler"`
	// SchedFlags are the scheduler flags and ops (one-packet scheduling),
	// resolved against the scheduler at load.
	SchedFlags  SchedFlags `json:"sched_flags,omitempty"`
	Method      Method     `json:"method"`
	Tunnel      Tunnel     `json:"tunnel,omitzero"`
	Persistence Duration   `json:"persistence_timeout"`
	// Granularity is the persistence netmask (the zero Addr: not given).
	// The configuration writes it as a dotted mask for IPv4, which need
	// not be a prefix (keepalived and IPVS apply it bitwise), and as a
	// prefix length for IPv6.
	Granularity       netip.Addr   `json:"persistence_granularity,omitzero"`
	PersistenceEngine string       `json:"persistence_engine,omitempty"`
	HASuspend         bool         `json:"ha_suspend"`
	Virtualhost       string       `json:"virtualhost,omitempty"`
	Omega             bool         `json:"omega"`
	Quorum            int          `json:"quorum"`
	Hysteresis        int          `json:"hysteresis"`
	QuorumUp          []string     `json:"quorum_up,omitempty"`
	QuorumDown        []string     `json:"quorum_down,omitempty"`
	Inhibit           bool         `json:"inhibit_on_failure"`
	SorryServer       *SorryServer `json:"sorry_server,omitempty"`
	SMTPAlert         bool         `json:"smtp_alert"`
	// Weight is the default weight of the real servers (keepalived: 1).
	Weight      int            `json:"weight"`
	Defaults    TimingDefaults `json:"checker_defaults"`
	RealServers []*RealServer  `json:"real_servers"`

	unset vsUnset
}

type vsUnset struct {
	smtpAlert *bool
	// schedFlags are the flag keywords, resolved once lb_algo is known.
	schedFlags []syntax.Token
	// granularity is read once the address family is known.
	granularity *syntax.Token
}

// SchedFlags are a virtual server's scheduler options. keepalived's
// flag-1 and flag-2 are the scheduler's first two flags (ip_vs.h
// IP_VS_SVC_F_SCHED1/2), which sh and mh call fallback and port
// (keepalived.conf(5) virtual_server).
type SchedFlags uint8

// The scheduler options.
const (
	// SchedOnePacket is ops: each UDP datagram scheduled on its own.
	SchedOnePacket SchedFlags = 1 << iota
	// SchedFallback is sh-fallback or mh-fallback (flag-1): skip an
	// unavailable server.
	SchedFallback
	// SchedPort is sh-port or mh-port (flag-2): hash the source port too.
	SchedPort
	// SchedHashed and SchedFlag3 are kept for Format; IPVS does not let a
	// user set them, and no scheduler reads them.
	SchedHashed
	SchedFlag3
)

// MarshalText writes the flags by their scheduler-independent names.
func (f SchedFlags) MarshalText() ([]byte, error) {
	return []byte(strings.Join(f.words(SchedulerUnset), " ")), nil
}

// words are the keywords of f under scheduler sched, as Format writes them.
func (f SchedFlags) words(sched Scheduler) []string {
	var w []string
	prefix := sched.String() + "-"
	if sched != SchedulerSH && sched != SchedulerMH {
		prefix = ""
	}
	for _, x := range []struct {
		bit         SchedFlags
		named, flag string
	}{{SchedHashed, "hashed", "hashed"}, {SchedFallback, "fallback", "flag-1"}, {SchedPort, "port", "flag-2"}, {SchedFlag3, "flag-3", "flag-3"}, {SchedOnePacket, "ops", "ops"}} {
		switch {
		case f&x.bit == 0:
		case prefix != "" && (x.bit == SchedFallback || x.bit == SchedPort):
			w = append(w, prefix+x.named)
		default:
			w = append(w, x.flag)
		}
	}
	return w
}

// SorryServer is where traffic goes when no real server is up.
type SorryServer struct {
	Pos     Pos        `json:"-"`
	IP      netip.Addr `json:"ip"`
	Port    int        `json:"port"`
	Method  Method     `json:"method"`
	Tunnel  Tunnel     `json:"tunnel,omitzero"`
	Inhibit bool       `json:"inhibit"`
}

// Tunnel is how a TUN server's packets are encapsulated: the options of
// "lb_kind TUN type ipip|gue|gre [port N] [nocsum|csum|remcsum]"
// (keepalived check_parser.c, svr_forwarding_handler). The zero value is
// plain IPIP, what "lb_kind TUN" alone means; it is zero for NAT and DR.
type Tunnel struct {
	Type TunnelType `json:"type"`
	// Port is the GUE destination port (1..65535); 0 for ipip and gre.
	Port int        `json:"port,omitempty"`
	Csum TunnelCsum `json:"csum"`
}

// TimingDefaults are the checker timing keywords as given on a virtual
// server, real server or checker; nil means not given. They cascade from
// virtual server to real server to checker (keepalived check_data.c: an unset
// value is taken from the enclosing block, then from the checker's default).
type TimingDefaults struct {
	DelayLoop        *Duration `json:"delay_loop,omitempty"`
	ConnectTimeout   *Duration `json:"connect_timeout,omitempty"`
	Retry            *int      `json:"retry,omitempty"`
	DelayBeforeRetry *Duration `json:"delay_before_retry,omitempty"`
	Warmup           *Duration `json:"warmup,omitempty"`
	Alpha            *bool     `json:"alpha,omitempty"`
}

// Timing is a checker's resolved timing.
type Timing struct {
	DelayLoop        Duration `json:"delay_loop"`
	ConnectTimeout   Duration `json:"connect_timeout"`
	Retry            int      `json:"retry"`
	DelayBeforeRetry Duration `json:"delay_before_retry"`
	// Warmup is the upper bound of the random delay before the first check.
	Warmup Duration `json:"warmup"`
	// Alpha starts the checker in the failed state.
	Alpha bool `json:"alpha"`
}

// RealServer is a real_server block.
type RealServer struct {
	Pos        Pos        `json:"-"`
	IP         netip.Addr `json:"ip"`
	Port       int        `json:"port"`
	Weight     int        `json:"weight"`
	Method     Method     `json:"method"`
	Tunnel     Tunnel     `json:"tunnel,omitzero"`
	UThreshold int        `json:"uthreshold,omitempty"`
	LThreshold int        `json:"lthreshold,omitempty"`
	Inhibit    bool       `json:"inhibit_on_failure"`
	NotifyUp   []string   `json:"notify_up,omitempty"`
	NotifyDown []string   `json:"notify_down,omitempty"`
	SMTPAlert  bool       `json:"smtp_alert"`
	// Virtualhost is the Host header default for this server's HTTP checks.
	Virtualhost string         `json:"virtualhost,omitempty"`
	Defaults    TimingDefaults `json:"checker_defaults"`
	Checkers    []*Checker     `json:"checkers"`

	unset rsUnset
}

type rsUnset struct {
	inhibit, smtpAlert *bool
}

// Checker is one health checker of a real server. Type selects which of
// the type-specific parts is set.
type Checker struct {
	Pos         Pos            `json:"-"`
	Type        CheckType      `json:"type"`
	ConnectIP   netip.Addr     `json:"connect_ip,omitzero"`
	ConnectPort int            `json:"connect_port,omitempty"`
	BindTo      netip.Addr     `json:"bindto,omitzero"`
	BindPort    int            `json:"bind_port,omitempty"`
	BindIf      string         `json:"bind_if,omitempty"`
	FWMark      uint32         `json:"fwmark,omitempty"`
	Set         TimingDefaults `json:"-"`
	Timing      Timing         `json:"timing"`
	LogAll      bool           `json:"log_all_failures"`
	HTTP        *HTTPCheck     `json:"http,omitempty"`
	Misc        *MiscCheck     `json:"misc,omitempty"`
	SMTP        *SMTPCheck     `json:"smtp,omitempty"`
	DNS         *DNSCheck      `json:"dns,omitempty"`
	UDP         *UDPCheck      `json:"udp,omitempty"`
	File        *FileCheck     `json:"file,omitempty"`
	BFD         *BFDCheck      `json:"bfd,omitempty"`
}

// BFDCheck is a BFD_CHECK: the real server is up while the bfd_instance
// it names is Up (keepalived check_bfd.c).
type BFDCheck struct {
	Name string `json:"name"`
}

// HTTPCheck holds HTTP_GET / SSL_GET settings.
type HTTPCheck struct {
	URLs []*URL `json:"urls"`
	// Protocol is the request's HTTP version.
	Protocol    HTTPVersion `json:"http_protocol"`
	Virtualhost string      `json:"virtualhost,omitempty"`
	EnableSNI   bool        `json:"enable_sni"`
	SNIName     string      `json:"sni_name,omitempty"`
	// TLSCompliant ends SSL_GET's connections with a close_notify alert;
	// without it they are closed quietly, as keepalived's are
	// (SSL_set_quiet_shutdown). A url may ask for it on its own.
	TLSCompliant bool `json:"tls_compliant"`
}

// URL is one url block: what to fetch and what a good answer is.
type URL struct {
	Pos  Pos    `json:"-"`
	Path string `json:"path"`
	// Digest is the expected MD5 of the body, lower-case hex.
	Digest      string        `json:"digest,omitempty"`
	StatusCodes []StatusRange `json:"status_code"`
	Virtualhost string        `json:"virtualhost,omitempty"`
	// Regex is compiled at load (Go RE2); dumps show its source.
	Regex        *regexp.Regexp `json:"regex,omitempty"`
	RegexNoMatch bool           `json:"regex_no_match,omitempty"`
	// TLSCompliant is SSL_GET's tls_compliant for this url only.
	TLSCompliant bool `json:"tls_compliant,omitempty"`
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// MiscCheck runs a program; exit 0 is up (with misc_dynamic, 2..255 set the
// weight to code-2).
type MiscCheck struct {
	Command []string `json:"misc_path"`
	Timeout Duration `json:"misc_timeout"`
	Dynamic bool     `json:"misc_dynamic"`
	User    string   `json:"user,omitempty"`
	Group   string   `json:"group,omitempty"`
}

// SMTPCheck connects and expects a 2xx greeting and HELO reply.
type SMTPCheck struct {
	HeloName string `json:"helo_name"`
}

// DNSCheck queries a name and expects an answer.
type DNSCheck struct {
	Type DNSType `json:"type"`
	Name string  `json:"name"`
}

// DNSType is a DNS_CHECK query type, as numbered on the wire.
type DNSType uint16

// dnsTypes are the types keepalived's DNS_CHECK offers (check_dns.c
// DNS_TYPE), by their numbers in RFC 1035 §3.2.2, RFC 3596 §2.1 (AAAA)
// and RFC 4034 §3, §2 (RRSIG, DNSKEY). keepalived matches them ignoring
// case (dns_type_lookup uses strcasecmp).
var dnsTypes = vocabulary[DNSType]{{1, "A"}, {2, "NS"}, {5, "CNAME"}, {6, "SOA"}, {15, "MX"}, {16, "TXT"}, {28, "AAAA"}, {46, "RRSIG"}, {48, "DNSKEY"}}

func (t DNSType) String() string {
	if w := dnsTypes.words(t); len(w) == 1 {
		return w[0]
	}
	return "TYPE" + strconv.Itoa(int(t)) // RFC 3597 §5's notation
}

// MarshalText writes the type's name.
func (t DNSType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UDPCheck sends a payload and optionally expects a reply.
type UDPCheck struct {
	// Payload is hex on the configuration line, raw bytes here.
	Payload      []byte `json:"payload,omitempty"`
	RequireReply bool   `json:"require_reply"`
	// Reply is a required prefix of the reply (require_reply's argument);
	// only then are MinReply and MaxReply checked, as keepalived does.
	Reply []byte `json:"reply,omitempty"`
	// ReplyMask has the bits of Reply that match anything (the x
	// wildcards of require_reply); nil when there are none.
	ReplyMask []byte `json:"reply_mask,omitempty"`
	MinReply  int    `json:"min_reply_length"`
	MaxReply  int    `json:"max_reply_length"`
}

// FileCheck follows a vrrp_track_file (track_file) for a real server.
type FileCheck struct {
	TrackFile string `json:"track_file"`
	Weight    int    `json:"weight"`
	Reverse   bool   `json:"weight_reverse"`
	WeightSet bool   `json:"weight_set"`
}

// Name identifies the virtual server as keepalived's messages do.
func (vs *VirtualServer) Name() string {
	switch {
	case vs.Group != "":
		return "group " + vs.Group
	case vs.FWMark != 0:
		return "fwmark " + strconv.FormatUint(uint64(vs.FWMark), 10)
	}
	return netip.AddrPortFrom(vs.IP, uint16(vs.Port)).String()
}

// BFDInstance is a bfd_instance block (keepalived.conf(5), BFD section;
// bfd_parser.c). Times are read in milliseconds with up to three decimals.
type BFDInstance struct {
	Pos  Pos    `json:"-"`
	Name string `json:"name"`
	// Neighbor is neighbor_ip (or neighbour_ip); Source is source_ip
	// (zero: the kernel picks).
	Neighbor netip.Addr `json:"neighbor_ip"`
	Source   netip.Addr `json:"source_ip,omitzero"`
	MinRx    Duration   `json:"min_rx"`
	MinTx    Duration   `json:"min_tx"`
	IdleTx   Duration   `json:"idle_tx"`
	// Multiplier is the detection time multiplier, 1..255.
	Multiplier int  `json:"multiplier"`
	Passive    bool `json:"passive"`
	// TTL is ttl or hoplimit (default 255 for IPv4, 64 for IPv6, as
	// keepalived's BFD_CONTROL_TTL and BFD_CONTROL_HOPLIMIT); MaxHops is
	// -1..TTL (-1: the received TTL is not checked).
	TTL     int `json:"ttl"`
	MaxHops int `json:"max_hops"`
	// Weight and WeightReverse are what track_bfd uses when a reference
	// gives no weight of its own.
	Weight        int  `json:"weight"`
	WeightReverse bool `json:"weight_reverse"`
	// Multihop (Tandem's, not keepalived's) runs the session as RFC 5883
	// multihop, on UDP port 4784; keepalived always uses RFC 5881's 3784.
	Multihop bool `json:"multihop"`
	// ttlSet records that ttl or hoplimit was given.
	ttlSet bool
}
