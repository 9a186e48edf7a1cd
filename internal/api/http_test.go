package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"golang.org/x/net/html"
)

// fakeSource is a Source whose status the test sets.
type fakeSource struct {
	mu       sync.Mutex
	st       Status
	table    Table
	tableErr error
	// handovers are the handover requests received.
	handovers []HandoverRequest
	// drains are the drain requests received.
	drains []DrainRequest
}

func (f *fakeSource) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSource) Table() (Table, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.table, f.tableErr
}

func (f *fakeSource) Reload() (ReloadResult, error) {
	return ReloadResult{}, errors.New("not in this test")
}

// Handover records the request; it refuses one naming VI_9.
func (f *fakeSource) Handover(req HandoverRequest) (HandoverResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handovers = append(f.handovers, req)
	if slices.Contains(req.Instances, "VI_9") {
		return HandoverResult{}, errors.New("no vrrp_instance VI_9 runs here")
	}
	return HandoverResult{Instances: req.Instances}, nil
}

// Drain records the request; it refuses an undo.
func (f *fakeSource) Drain(req DrainRequest) (DrainResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, req)
	if req.Undo {
		return DrainResult{}, errors.New("not drained")
	}
	return DrainResult{VIPs: []string{"192.0.2.10"}}, nil
}

func (f *fakeSource) set(fn func(*Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

var statusT0 = time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)

// testSource is a director with one master instance (and one with a name
// to escape), a virtual server with a healthy and a failed real server,
// and two BFD sessions, one Up and one Down (bfdSessions), and a BGP
// speaker (bgpSpeaker).
func testSource() *fakeSource {
	return &fakeSource{
		st: Status{
			Version: "v1.2.3", Config: "/etc/tandem/tandem.conf", Started: statusT0, Dataplane: "nft", DataplaneOps: 7,
			Instances: []InstanceStatus{
				{Name: "VI_1", State: "MASTER", VRID: 51, Interface: "eth0", Priority: 100, EffectivePriority: 90,
					MasterIP: "192.0.2.1", VIPs: []string{"192.0.2.100/24"}, Since: statusT0.Add(time.Second),
					AdvertsSent: 120, AdvertsReceived: 3, Dropped: map[string]uint64{"auth": 4, "ttl": 1, "malformed": 2}, Transitions: 2,
					Reason: "advert timeout from 192.0.2.9"},
				{Name: `<b>"evil"</b>`, State: "BACKUP", VRID: 52, Interface: "eth1", Priority: 50, EffectivePriority: 50,
					VIPs: []string{}, Dropped: map[string]uint64{}},
			},
			VirtualServers: []VirtualServerStatus{{
				Name: "192.0.2.100:80", VIP: "192.0.2.100", Port: 80, Protocol: "TCP", Scheduler: "rr", Method: "NAT", QuorumOK: true,
				RealServers: []RealServerStatus{
					{IP: "10.0.0.1", Port: 80, Weight: 3, Healthy: true, Checkers: []CheckerStatus{
						{Type: "TCP_CHECK", LastResult: "ok", LastRun: statusT0.Add(10 * time.Second), Latency: 0.002}}},
					{IP: "10.0.0.2", Port: 80, Weight: 1, Healthy: false, Checkers: []CheckerStatus{
						{Type: "HTTP_GET", LastResult: "failed", LastError: "status 503 <not 200>", LastRun: statusT0.Add(11 * time.Second), Latency: 0.3}}},
				},
			}},
			BFD: bfdSessions(),
			BGP: bgpSpeaker(),
			Events: []Event{
				{Time: statusT0, Kind: "vrrp", Object: "instance VI_1", Message: "entering BACKUP"},
				{Time: statusT0.Add(time.Second), Kind: "vrrp", Object: "instance VI_1", Message: "entering MASTER", Reason: "advert timeout from 192.0.2.9"},
			},
		},
		table: Table{Dataplane: "nft", Services: []TableService{{Protocol: "TCP", Address: "192.0.2.100:80", Scheduler: "rr",
			Dests: []TableDest{{Address: "10.0.0.1:80", Forward: "Masq", Weight: 3, ActiveConn: 5, InActConn: 2, Packets: 1000, Bytes: 123456}}}}},
	}
}

func newTestServer(t *testing.T, src Source) *httptest.Server {
	t.Helper()
	h, err := NewHandler(src, slog.New(slog.DiscardHandler), HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv
}

func httpGet(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), resp.Header
}

func TestMetrics(t *testing.T) {
	src := testSource()
	srv := newTestServer(t, src)
	dropped := func(instance string, counts map[string]int) string {
		var b strings.Builder
		for _, r := range metricDropReasons {
			b.WriteString(`tandem_vrrp_adverts_dropped_total{instance="` + instance + `",reason="` + r + `"} `)
			b.WriteString(strconv.Itoa(counts[r]) + "\n")
		}
		return b.String()
	}
	const evil = `<b>\"evil\"</b>`
	want := `
# HELP tandem_vrrp_state 1 for the VRRP instance's current state, 0 for the others; vrid and vip (the lowest virtual address) name its virtual router across directors.
# TYPE tandem_vrrp_state gauge
tandem_vrrp_state{instance="VI_1",state="BACKUP",vip="192.0.2.100",vrid="51"} 0
tandem_vrrp_state{instance="VI_1",state="FAULT",vip="192.0.2.100",vrid="51"} 0
tandem_vrrp_state{instance="VI_1",state="INIT",vip="192.0.2.100",vrid="51"} 0
tandem_vrrp_state{instance="VI_1",state="MASTER",vip="192.0.2.100",vrid="51"} 1
tandem_vrrp_state{instance="VI_1",state="STOP",vip="192.0.2.100",vrid="51"} 0
tandem_vrrp_state{instance="` + evil + `",state="BACKUP",vip="",vrid="52"} 1
tandem_vrrp_state{instance="` + evil + `",state="FAULT",vip="",vrid="52"} 0
tandem_vrrp_state{instance="` + evil + `",state="INIT",vip="",vrid="52"} 0
tandem_vrrp_state{instance="` + evil + `",state="MASTER",vip="",vrid="52"} 0
tandem_vrrp_state{instance="` + evil + `",state="STOP",vip="",vrid="52"} 0
# HELP tandem_vrrp_transitions_total State changes of the VRRP instance since start.
# TYPE tandem_vrrp_transitions_total counter
tandem_vrrp_transitions_total{instance="VI_1"} 2
tandem_vrrp_transitions_total{instance="` + evil + `"} 0
# HELP tandem_vrrp_adverts_sent_total VRRP advertisements sent.
# TYPE tandem_vrrp_adverts_sent_total counter
tandem_vrrp_adverts_sent_total{instance="VI_1"} 120
tandem_vrrp_adverts_sent_total{instance="` + evil + `"} 0
# HELP tandem_vrrp_adverts_received_total VRRP advertisements received and accepted.
# TYPE tandem_vrrp_adverts_received_total counter
tandem_vrrp_adverts_received_total{instance="VI_1"} 3
tandem_vrrp_adverts_received_total{instance="` + evil + `"} 0
# HELP tandem_vrrp_adverts_dropped_total Received VRRP packets dropped, by reason.
# TYPE tandem_vrrp_adverts_dropped_total counter
` + dropped("VI_1", map[string]int{"auth": 4, "ttl": 1, "malformed": 2}) + dropped(evil, nil) + `
# HELP tandem_vrrp_priority Configured priority of the VRRP instance.
# TYPE tandem_vrrp_priority gauge
tandem_vrrp_priority{instance="VI_1"} 100
tandem_vrrp_priority{instance="` + evil + `"} 50
# HELP tandem_vrrp_effective_priority Priority advertised, including the tracked objects' weights.
# TYPE tandem_vrrp_effective_priority gauge
tandem_vrrp_effective_priority{instance="VI_1"} 90
tandem_vrrp_effective_priority{instance="` + evil + `"} 50
# HELP tandem_real_server_healthy 1 if the real server is healthy (its checks pass; it is in the pool), else 0.
# TYPE tandem_real_server_healthy gauge
tandem_real_server_healthy{protocol="TCP",real_server="10.0.0.1:80",virtual_server="192.0.2.100:80"} 1
tandem_real_server_healthy{protocol="TCP",real_server="10.0.0.2:80",virtual_server="192.0.2.100:80"} 0
# HELP tandem_real_server_weight Weight of the real server in the pool.
# TYPE tandem_real_server_weight gauge
tandem_real_server_weight{protocol="TCP",real_server="10.0.0.1:80",virtual_server="192.0.2.100:80"} 3
tandem_real_server_weight{protocol="TCP",real_server="10.0.0.2:80",virtual_server="192.0.2.100:80"} 1
# HELP tandem_virtual_server_quorum_up 1 if the virtual server's healthy weight reaches its quorum.
# TYPE tandem_virtual_server_quorum_up gauge
tandem_virtual_server_quorum_up{protocol="TCP",virtual_server="192.0.2.100:80"} 1
# HELP tandem_dataplane_operations_total Operations sent to the data plane since start (services and real servers added, changed, removed).
# TYPE tandem_dataplane_operations_total counter
tandem_dataplane_operations_total{dataplane="nft"} 7
# HELP tandem_dataplane_table_up 1 if the data plane's live table could be read at this scrape, else 0 (its counters are then missing).
# TYPE tandem_dataplane_table_up gauge
tandem_dataplane_table_up{dataplane="nft"} 1
# HELP tandem_dataplane_active_connections Active connections to the real server (IPVS; nftables NAT: connections scheduled).
# TYPE tandem_dataplane_active_connections gauge
tandem_dataplane_active_connections{protocol="TCP",real_server="10.0.0.1:80",service="192.0.2.100:80"} 5
# HELP tandem_dataplane_inactive_connections Inactive connections to the real server (IPVS only).
# TYPE tandem_dataplane_inactive_connections gauge
tandem_dataplane_inactive_connections{protocol="TCP",real_server="10.0.0.1:80",service="192.0.2.100:80"} 2
# HELP tandem_dataplane_packets_total Packets the data plane forwarded to the real server.
# TYPE tandem_dataplane_packets_total counter
tandem_dataplane_packets_total{protocol="TCP",real_server="10.0.0.1:80",service="192.0.2.100:80"} 1000
# HELP tandem_dataplane_bytes_total Bytes the data plane forwarded to the real server.
# TYPE tandem_dataplane_bytes_total counter
tandem_dataplane_bytes_total{protocol="TCP",real_server="10.0.0.1:80",service="192.0.2.100:80"} 123456
# HELP tandem_build_info Always 1; the version label is the running Tandem's.
# TYPE tandem_build_info gauge
tandem_build_info{version="v1.2.3"} 1
`
	names := []string{"tandem_vrrp_state", "tandem_vrrp_transitions_total", "tandem_vrrp_adverts_sent_total",
		"tandem_vrrp_adverts_received_total", "tandem_vrrp_adverts_dropped_total", "tandem_vrrp_priority",
		"tandem_vrrp_effective_priority", "tandem_real_server_healthy", "tandem_real_server_weight",
		"tandem_virtual_server_quorum_up", "tandem_dataplane_operations_total", "tandem_dataplane_table_up",
		"tandem_dataplane_active_connections", "tandem_dataplane_inactive_connections",
		"tandem_dataplane_packets_total", "tandem_dataplane_bytes_total", "tandem_build_info"}
	if err := testutil.ScrapeAndCompare(srv.URL+"/metrics", strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// The sampler has seen both checkers by its first run, at start.
	body, _ := httpGet(t, srv.URL+"/metrics")
	for _, line := range []string{
		`tandem_check_latency_seconds_count{checker="TCP_CHECK",protocol="TCP",real_server="10.0.0.1:80",result="ok",virtual_server="192.0.2.100:80"} 1`,
		`tandem_check_latency_seconds_bucket{checker="HTTP_GET",protocol="TCP",real_server="10.0.0.2:80",result="failed",virtual_server="192.0.2.100:80",le="0.25"} 0`,
		`tandem_check_latency_seconds_bucket{checker="HTTP_GET",protocol="TCP",real_server="10.0.0.2:80",result="failed",virtual_server="192.0.2.100:80",le="0.5"} 1`,
		// Packets dropped without a reason are counted too.
		`tandem_vrrp_adverts_dropped_total{instance="VI_1",reason="malformed"} 2`,
		"go_goroutines ", "process_open_fds ",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if problems, err := testutil.CollectAndLint(statusCollector{src}); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// TestMetricsTableError: an unreadable live table is a 0, not a failed
// scrape, and the rest is still exported.
func TestMetricsTableError(t *testing.T) {
	src := testSource()
	src.tableErr = errors.New("netlink: operation not permitted")
	want := `
# HELP tandem_dataplane_table_up 1 if the data plane's live table could be read at this scrape, else 0 (its counters are then missing).
# TYPE tandem_dataplane_table_up gauge
tandem_dataplane_table_up{dataplane="nft"} 0
`
	if err := testutil.CollectAndCompare(statusCollector{src}, strings.NewReader(want), "tandem_dataplane_table_up", "tandem_dataplane_packets_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(statusCollector{src}, "tandem_real_server_healthy"); n != 2 {
		t.Errorf("%d tandem_real_server_healthy series, want 2", n)
	}
}

// TestMetricsSyncDaemon: lvs_sync_daemon's daemons are exported by role,
// both roles always, and nothing when it is not configured.
func TestMetricsSyncDaemon(t *testing.T) {
	src := testSource()
	if n := testutil.CollectAndCount(statusCollector{src}, "tandem_lvs_sync_daemon_running"); n != 0 {
		t.Errorf("%d sync daemon series without lvs_sync_daemon, want 0", n)
	}
	src.set(func(st *Status) {
		st.SyncDaemon = &SyncDaemonStatus{Interface: "eth1", Instance: "VI_1", SyncID: 51, Running: []string{"backup"}}
	})
	want := `
# HELP tandem_lvs_sync_daemon_running 1 if the kernel runs IPVS's connection-sync daemon in this role (lvs_sync_daemon), else 0.
# TYPE tandem_lvs_sync_daemon_running gauge
tandem_lvs_sync_daemon_running{interface="eth1",role="backup",sync_id="51"} 1
tandem_lvs_sync_daemon_running{interface="eth1",role="master",sync_id="51"} 0
`
	if err := testutil.CollectAndCompare(statusCollector{src}, strings.NewReader(want), "tandem_lvs_sync_daemon_running"); err != nil {
		t.Error(err)
	}
}

// TestMetricsConntrackd: conntrackd's state and last command are
// exported when conntrack_sync is configured, and nothing otherwise.
func TestMetricsConntrackd(t *testing.T) {
	src := testSource()
	names := []string{"tandem_conntrackd_running", "tandem_conntrackd_restarts_total", "tandem_conntrackd_last_command_ok"}
	if n := testutil.CollectAndCount(statusCollector{src}, names...); n != 0 {
		t.Errorf("%d conntrackd series without conntrack_sync, want 0", n)
	}
	src.set(func(st *Status) {
		st.Conntrackd = &ConntrackdStatus{Follows: "instance VI_1", Running: true, Restarts: 3, Role: "MASTER", Command: "conntrackd -c", CommandError: "exit status 1"}
	})
	want := `
# HELP tandem_conntrackd_last_command_ok 1 if the last command given to conntrackd on a VRRP transition succeeded, else 0.
# TYPE tandem_conntrackd_last_command_ok gauge
tandem_conntrackd_last_command_ok{command="conntrackd -c",follows="instance VI_1",role="MASTER"} 0
# HELP tandem_conntrackd_restarts_total Times conntrackd died and was restarted.
# TYPE tandem_conntrackd_restarts_total counter
tandem_conntrackd_restarts_total{follows="instance VI_1"} 3
# HELP tandem_conntrackd_running 1 if the conntrackd of conntrack_sync runs, else 0.
# TYPE tandem_conntrackd_running gauge
tandem_conntrackd_running{follows="instance VI_1"} 1
`
	if err := testutil.CollectAndCompare(statusCollector{src}, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// histogram returns the sample count and sum of one latency series.
func histogram(t *testing.T, s *latencySampler, labels ...string) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := s.hist.WithLabelValues(labels...).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestSamplerOncePerRun: a checker's latency is observed once per run,
// however often it is sampled, and a checker removed by a reload loses its
// series.
func TestSamplerOncePerRun(t *testing.T) {
	src := testSource()
	s := newLatencySampler(src)
	ok := []string{"192.0.2.100:80", "TCP", "10.0.0.1:80", "TCP_CHECK", "ok"}
	s.sample()
	s.sample()
	if n, sum := histogram(t, s, ok...); n != 1 || sum != 0.002 {
		t.Errorf("after two samples of one run: count %d sum %v, want 1 and 0.002", n, sum)
	}
	src.set(func(st *Status) {
		c := &st.VirtualServers[0].RealServers[0].Checkers[0]
		c.LastRun, c.Latency = c.LastRun.Add(6*time.Second), 0.004
	})
	s.sample()
	s.sample()
	if n, sum := histogram(t, s, ok...); n != 2 || sum != 0.006 {
		t.Errorf("after a second run: count %d sum %v, want 2 and 0.006", n, sum)
	}
	src.set(func(st *Status) { st.VirtualServers[0].RealServers = st.VirtualServers[0].RealServers[:1] })
	s.sample()
	if n := testutil.CollectAndCount(s.hist); n != 1 {
		t.Errorf("%d latency series after 10.0.0.2's removal, want 1", n)
	}
	// Not run yet: nothing to observe.
	src.set(func(st *Status) { st.VirtualServers[0].RealServers[0].Checkers[0].LastRun = time.Time{} })
	s.sample()
	if n, _ := histogram(t, s, ok...); n != 2 {
		t.Errorf("count %d after a checker with no run, want 2", n)
	}
}

// TestSamplerStops: Close ends the sampler's goroutine, and ListenHTTP's
// Close ends everything it started. Goroutines from earlier tests (an HTTP
// connection that another test's server is still closing) are not this
// test's concern: it checks only what it starts.
func TestSamplerStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h, err := NewHandler(testSource(), slog.New(slog.DiscardHandler), HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	srv, err := ListenHTTP("127.0.0.1:0", testSource(), slog.New(slog.DiscardHandler), 8, HandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestListenHTTPAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if srv, err := ListenHTTP(ln.Addr().String(), testSource(), slog.New(slog.DiscardHandler), 8, HandlerOptions{}); err == nil {
		srv.Close()
		t.Fatalf("ListenHTTP on %s, which is in use: no error", ln.Addr())
	}
}

// TestStatusJSON: /status.json is byte for byte what `tandem status
// --json` prints, and decodes to the status.
func TestStatusJSON(t *testing.T) {
	src := testSource()
	srv := newTestServer(t, src)
	body, hdr := httpGet(t, srv.URL+"/status.json")
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(src.Status()); err != nil {
		t.Fatal(err)
	}
	if body != want.String() {
		t.Errorf("/status.json differs from the --json document:\n%s", cmp.Diff(want.String(), body))
	}
	var got Status
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(src.Status(), got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

// rows returns, for each <tr> with class class, its attribute attr.
func rows(t *testing.T, page, class, attr string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			var cls, val string
			for _, a := range n.Attr {
				switch a.Key {
				case "class":
					cls = a.Val
				case attr:
					val = a.Val
				}
			}
			if strings.Contains(" "+cls+" ", " "+class+" ") {
				out = append(out, val)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

func TestPage(t *testing.T) {
	src := testSource()
	srv := newTestServer(t, src)
	page, hdr := httpGet(t, srv.URL+"/")
	if ct := hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if got, want := rows(t, page, "instance", "data-name"), []string{"VI_1", `<b>"evil"</b>`}; !cmp.Equal(got, want) {
		t.Errorf("instance rows %q, want %q", got, want)
	}
	if got, want := rows(t, page, "rs", "data-address"), []string{"10.0.0.1:80", "10.0.0.2:80"}; !cmp.Equal(got, want) {
		t.Errorf("real server rows %q, want %q", got, want)
	}
	if got := rows(t, page, "rs-down", "data-address"); !cmp.Equal(got, []string{"10.0.0.2:80"}) {
		t.Errorf("real servers marked down: %q, want 10.0.0.2:80", got)
	}
	for _, want := range []string{
		"&lt;b&gt;&#34;evil&#34;&lt;/b&gt;",          // the instance name, escaped
		"status 503 &lt;not 200&gt;",                 // the checker's error, escaped
		`<span class="badge s-master">MASTER</span>`, // colour-coded state
		"90 <span class=\"muted\">/ 100</span>",      // effective / configured
		"2.0 ms", "300.0 ms",                         // latencies
		"120.6 KiB", "4</span> auth", // live table bytes, drops
		"entering MASTER", `http-equiv="refresh"`,
		`<div class="muted reason">advert timeout from 192.0.2.9</div>`, // why VI_1 is MASTER
		"entering MASTER: advert timeout from 192.0.2.9",                // and in the events
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `<b>"evil"</b>`) {
		t.Error("the instance name is not escaped")
	}
	// Events newest first.
	if i, j := strings.Index(page, "entering MASTER"), strings.Index(page, "entering BACKUP"); i > j {
		t.Error("events are not newest first")
	}
	// A data plane that cannot be read is said so, the rest still shown.
	src.tableErr = errors.New("netlink: permission denied")
	page, _ = httpGet(t, srv.URL+"/")
	if !strings.Contains(page, "The live table could not be read: netlink: permission denied") || len(rows(t, page, "rs", "data-address")) != 2 {
		t.Error("page with an unreadable table: no error message, or real servers missing")
	}
}

func TestPageNothingConfigured(t *testing.T) {
	srv := newTestServer(t, &fakeSource{st: Status{Version: "v0", Instances: []InstanceStatus{}}})
	page, _ := httpGet(t, srv.URL+"/")
	for _, want := range []string{"No VRRP instances.", "No virtual servers.", "No events yet."} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "live table") {
		t.Error("page shows a data plane section without a data plane")
	}
	resp, err := http.Get(srv.URL + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing: %s, want 404", resp.Status)
	}
}

func TestPageHelpers(t *testing.T) {
	now := statusT0.Add(26*time.Hour + 3*time.Minute)
	for _, c := range []struct {
		t    time.Time
		want string
	}{{time.Time{}, "-"}, {now.Add(-90 * time.Second), "1m30s"}, {now.Add(-3*time.Hour - 5*time.Minute), "3h05m"}, {statusT0, "1d02h"}, {now.Add(time.Second), "0s"}} {
		if got := pageAgo(now, c.t); got != c.want {
			t.Errorf("pageAgo(%v) = %q, want %q", now.Sub(c.t), got, c.want)
		}
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := pageBytes(n); got != want {
			t.Errorf("pageBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[float64]string{0: "", 0.0004: "400 µs", 0.0123: "12.3 ms", 2.5: "2.50 s"} {
		if got := pageLatency(s); got != want {
			t.Errorf("pageLatency(%v) = %q, want %q", s, got, want)
		}
	}
}
