package api

import (
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"tandem/internal/vrrp"
)

// metricStates are the label values of tandem_vrrp_state: every state is
// exported (0 or 1) so that a query for MASTER finds a series even on a
// backup. Its vrid and vip labels (see metricVIP) let alert rules and
// dashboards group the directors of one virtual router, whose instance
// names may differ (packaging/prometheus/tandem-rules.yml counts the
// masters of each).
var metricStates = []string{vrrp.Init.String(), vrrp.Backup.String(), vrrp.Master.String(), vrrp.Fault.String(), vrrp.Stop.String()}

// metricSyncRoles are the label values of tandem_lvs_sync_daemon_running,
// the roles SyncDaemonStatus.Running names.
var metricSyncRoles = []string{"master", "backup"}

// metricDropReasons are the label values of tandem_vrrp_adverts_dropped_total,
// all exported from the start so that rate() sees a drop's first packet.
var metricDropReasons = vrrp.DropNames()

func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tandem_"+name, help, labels, nil)
}

// metric describes the series statusCollector exports.
var metric = struct {
	buildInfo     *prometheus.Desc
	dataplaneOps  *prometheus.Desc
	dataplaneUp   *prometheus.Desc
	vrrpState     *prometheus.Desc
	vrrpTrans     *prometheus.Desc
	vrrpSent      *prometheus.Desc
	vrrpLate      *prometheus.Desc
	vrrpReceived  *prometheus.Desc
	vrrpDropped   *prometheus.Desc
	vrrpPrio      *prometheus.Desc
	vrrpEffective *prometheus.Desc
	vsQuorum      *prometheus.Desc
	rsHealthy     *prometheus.Desc
	rsWeight      *prometheus.Desc
	dpActive      *prometheus.Desc
	dpInactive    *prometheus.Desc
	dpPackets     *prometheus.Desc
	dpBytes       *prometheus.Desc
	syncDaemon    *prometheus.Desc
	ctRunning     *prometheus.Desc
	ctRestarts    *prometheus.Desc
	ctCommandOK   *prometheus.Desc
	bfdUp         *prometheus.Desc
	bfdFlaps      *prometheus.Desc
	bfdLate       *prometheus.Desc
	bfdDetection  *prometheus.Desc
	bfdSent       *prometheus.Desc
	bfdReceived   *prometheus.Desc
	bfdDropped    *prometheus.Desc
	bgpUp         *prometheus.Desc
	bgpSent       *prometheus.Desc
	bgpReceived   *prometheus.Desc
	bgpVIP        *prometheus.Desc
}{
	buildInfo:     metricDesc("build_info", "Always 1; the version label is the running Tandem's.", "version"),
	dataplaneOps:  metricDesc("dataplane_operations_total", "Operations sent to the data plane since start (services and real servers added, changed, removed).", "dataplane"),
	dataplaneUp:   metricDesc("dataplane_table_up", "1 if the data plane's live table could be read at this scrape, else 0 (its counters are then missing).", "dataplane"),
	vrrpState:     metricDesc("vrrp_state", "1 for the VRRP instance's current state, 0 for the others; vrid and vip (the lowest virtual address) name its virtual router across directors.", "instance", "vrid", "vip", "state"),
	vrrpTrans:     metricDesc("vrrp_transitions_total", "State changes of the VRRP instance since start.", "instance"),
	vrrpSent:      metricDesc("vrrp_adverts_sent_total", "VRRP advertisements sent.", "instance"),
	vrrpLate:      metricDesc("vrrp_late_expiries_total", "Master_Down_Timer expiries that ran late (a stalled machine) and waited one more advertisement interval before a takeover.", "instance"),
	vrrpReceived:  metricDesc("vrrp_adverts_received_total", "VRRP advertisements received and accepted.", "instance"),
	vrrpDropped:   metricDesc("vrrp_adverts_dropped_total", "Received VRRP packets dropped, by reason.", "instance", "reason"),
	vrrpPrio:      metricDesc("vrrp_priority", "Configured priority of the VRRP instance.", "instance"),
	vrrpEffective: metricDesc("vrrp_effective_priority", "Priority advertised, including the tracked objects' weights.", "instance"),
	vsQuorum:      metricDesc("virtual_server_quorum_up", "1 if the virtual server's healthy weight reaches its quorum.", "virtual_server", "protocol"),
	rsHealthy:     metricDesc("real_server_healthy", "1 if the real server is healthy (its checks pass; it is in the pool), else 0.", "virtual_server", "protocol", "real_server"),
	rsWeight:      metricDesc("real_server_weight", "Weight of the real server in the pool.", "virtual_server", "protocol", "real_server"),
	dpActive:      metricDesc("dataplane_active_connections", "Active connections to the real server (IPVS; nftables NAT: connections scheduled).", "service", "protocol", "real_server"),
	dpInactive:    metricDesc("dataplane_inactive_connections", "Inactive connections to the real server (IPVS only).", "service", "protocol", "real_server"),
	dpPackets:     metricDesc("dataplane_packets_total", "Packets the data plane forwarded to the real server.", "service", "protocol", "real_server"),
	dpBytes:       metricDesc("dataplane_bytes_total", "Bytes the data plane forwarded to the real server.", "service", "protocol", "real_server"),
	syncDaemon:    metricDesc("lvs_sync_daemon_running", "1 if the kernel runs IPVS's connection-sync daemon in this role (lvs_sync_daemon), else 0.", "role", "interface", "sync_id"),
	ctRunning:     metricDesc("conntrackd_running", "1 if the conntrackd of conntrack_sync runs, else 0.", "follows"),
	ctRestarts:    metricDesc("conntrackd_restarts_total", "Times conntrackd died and was restarted.", "follows"),
	ctCommandOK:   metricDesc("conntrackd_last_command_ok", "1 if the last command given to conntrackd on a VRRP transition succeeded, else 0.", "follows", "role", "command"),
	bfdUp:         metricDesc("bfd_session_up", "1 if the BFD session (bfd_instance) is Up, else 0.", "session", "neighbor"),
	bfdFlaps:      metricDesc("bfd_session_flaps_total", "Transitions of the BFD session out of Up since start.", "session"),
	bfdLate:       metricDesc("bfd_late_detections_total", "Detection times that ran out late (a stalled machine) and were extended by one interval.", "session"),
	bfdDetection:  metricDesc("bfd_detection_seconds", "Detection time in force for the BFD session (RFC 5880 section 6.8.4).", "session"),
	bfdSent:       metricDesc("bfd_packets_sent_total", "BFD control packets sent on the session.", "session"),
	bfdReceived:   metricDesc("bfd_packets_received_total", "BFD control packets received for the session.", "session"),
	bfdDropped:    metricDesc("bfd_packets_dropped_total", "BFD control packets for the session that failed validation (RFC 5880 section 6.8.6).", "session"),
	bgpUp:         metricDesc("bgp_session_up", "1 if the BGP session to the router is established, else 0.", "neighbor", "remote_as"),
	bgpSent:       metricDesc("bgp_prefixes_sent", "Prefixes advertised to the router on the BGP session.", "neighbor"),
	bgpReceived:   metricDesc("bgp_prefixes_received", "Prefixes learned from the router on the BGP session.", "neighbor"),
	bgpVIP:        metricDesc("bgp_vip_announced", "1 if the VIP's host route is announced over BGP, 0 if withdrawn (no quorum, or not in the data plane).", "vip"),
}

// statusCollector turns a Source's status and live table into metrics at
// each scrape: the daemon already keeps every number, so reading them
// when asked is exact and costs nothing between scrapes.
type statusCollector struct{ src Source }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{metric.buildInfo, metric.dataplaneOps, metric.dataplaneUp, metric.vrrpState, metric.vrrpTrans, metric.vrrpSent, metric.vrrpLate, metric.vrrpReceived,
		metric.vrrpDropped, metric.vrrpPrio, metric.vrrpEffective, metric.vsQuorum, metric.rsHealthy, metric.rsWeight, metric.dpActive, metric.dpInactive, metric.dpPackets, metric.dpBytes, metric.syncDaemon,
		metric.ctRunning, metric.ctRestarts, metric.ctCommandOK,
		metric.bfdUp, metric.bfdFlaps, metric.bfdLate, metric.bfdDetection, metric.bfdSent, metric.bfdReceived, metric.bfdDropped,
		metric.bgpUp, metric.bgpSent, metric.bgpReceived, metric.bgpVIP} {
		ch <- d
	}
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := c.src.Status()
	gauge(metric.buildInfo, 1, st.Version)
	for _, in := range st.Instances {
		vrid, vip := strconv.Itoa(in.VRID), metricVIP(in.VIPs)
		for _, s := range metricStates {
			gauge(metric.vrrpState, metricBool(in.State == s), in.Name, vrid, vip, s)
		}
		counter(metric.vrrpTrans, in.Transitions, in.Name)
		counter(metric.vrrpSent, in.AdvertsSent, in.Name)
		counter(metric.vrrpLate, in.LateExpiries, in.Name)
		counter(metric.vrrpReceived, in.AdvertsReceived, in.Name)
		for _, r := range metricDropReasons {
			counter(metric.vrrpDropped, in.Dropped[r], in.Name, r)
		}
		gauge(metric.vrrpPrio, float64(in.Priority), in.Name)
		gauge(metric.vrrpEffective, float64(in.EffectivePriority), in.Name)
	}
	for _, vs := range st.VirtualServers {
		gauge(metric.vsQuorum, metricBool(vs.QuorumOK), vs.Name, vs.Protocol)
		for _, rs := range vs.RealServers {
			addr := rs.Address()
			gauge(metric.rsHealthy, metricBool(rs.Healthy), vs.Name, vs.Protocol, addr)
			gauge(metric.rsWeight, float64(rs.Weight), vs.Name, vs.Protocol, addr)
		}
	}
	if sd := st.SyncDaemon; sd != nil {
		// Both roles are exported, so that a query for the master daemon
		// finds a series on a backup too.
		for _, role := range metricSyncRoles {
			gauge(metric.syncDaemon, metricBool(slices.Contains(sd.Running, role)), role, sd.Interface, strconv.Itoa(sd.SyncID))
		}
	}
	if ct := st.Conntrackd; ct != nil {
		gauge(metric.ctRunning, metricBool(ct.Running), ct.Follows)
		counter(metric.ctRestarts, uint64(ct.Restarts), ct.Follows)
		if ct.Command != "" {
			gauge(metric.ctCommandOK, metricBool(ct.CommandError == ""), ct.Follows, ct.Role, ct.Command)
		}
	}
	for _, b := range st.BFD {
		gauge(metric.bfdUp, metricBool(b.State == "Up"), b.Name, b.Neighbor)
		counter(metric.bfdFlaps, b.Flaps, b.Name)
		counter(metric.bfdLate, b.LateDetections, b.Name)
		gauge(metric.bfdDetection, b.Detection, b.Name)
		counter(metric.bfdSent, b.Sent, b.Name)
		counter(metric.bfdReceived, b.Received, b.Name)
		counter(metric.bfdDropped, b.Dropped, b.Name)
	}
	if b := st.BGP; b != nil {
		for _, n := range b.Neighbors {
			gauge(metric.bgpUp, metricBool(n.State == "established"), n.Address, strconv.FormatUint(uint64(n.RemoteAS), 10))
			gauge(metric.bgpSent, float64(n.PrefixesSent), n.Address)
			gauge(metric.bgpReceived, float64(n.PrefixesReceived), n.Address)
		}
		for _, v := range b.VIPs {
			gauge(metric.bgpVIP, metricBool(v.Announced), v.VIP)
		}
	}
	if st.Dataplane == "" {
		return // no virtual servers: no data plane to report on
	}
	counter(metric.dataplaneOps, st.DataplaneOps, st.Dataplane)
	t, err := c.src.Table()
	gauge(metric.dataplaneUp, metricBool(err == nil), st.Dataplane)
	if err != nil {
		return
	}
	for _, s := range t.Services {
		for _, d := range s.Dests {
			gauge(metric.dpActive, float64(d.ActiveConn), s.Address, s.Protocol, d.Address)
			gauge(metric.dpInactive, float64(d.InActConn), s.Address, s.Protocol, d.Address)
			counter(metric.dpPackets, d.Packets, s.Address, s.Protocol, d.Address)
			counter(metric.dpBytes, d.Bytes, s.Address, s.Protocol, d.Address)
		}
	}
}

// metricVIP is the lowest of an instance's virtual addresses, without its
// prefix length ("" for none). The VRID alone does not name a virtual
// router across directors: IPv4 and IPv6 have a VRID space each (RFC 5798
// §5.2.3), and keepalived lets two instances share a VRID on one interface
// when they advertise to different groups or peers. Their addresses do,
// as the directors of one virtual router hold the same ones (adverts with
// another list are counted as addr_list drops); the lowest, so that the
// order they are configured in does not matter.
func metricVIP(vips []string) string {
	var low netip.Addr
	for _, v := range vips {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			continue // the daemon writes netip.Prefix's String
		}
		if a := p.Addr(); !low.IsValid() || a.Less(low) {
			low = a
		}
	}
	if !low.IsValid() {
		return ""
	}
	return low.String()
}

func metricBool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Address is the real server as ip:port (as the live table names it), or
// the bare ip for a real server configured without a port.
func (rs RealServerStatus) Address() string {
	if rs.Port == 0 {
		return rs.IP
	}
	return net.JoinHostPort(rs.IP, strconv.Itoa(rs.Port))
}
