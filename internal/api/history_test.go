package api

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/clock"
)

var histT0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// histSource is a source with one instance, one virtual server with one
// checked real server, and its service in the live table.
func histSource() *fakeSource {
	return &fakeSource{
		st: Status{Dataplane: "nft",
			Instances: []InstanceStatus{{Name: "VI_1", State: "BACKUP"}},
			VirtualServers: []VirtualServerStatus{{Name: "192.0.2.100:80", Protocol: "TCP", RealServers: []RealServerStatus{
				{IP: "10.0.0.1", Port: 80, Checkers: []CheckerStatus{{Type: "TCP_CHECK", LastRun: histT0, Latency: 0.002}}},
			}}},
		},
		table: Table{Dataplane: "nft", Services: []TableService{{Protocol: "TCP", Address: "192.0.2.100:80",
			Dests: []TableDest{{Address: "10.0.0.1:80", Bytes: 1000}}}}},
	}
}

func (f *fakeSource) setTable(fn func(*Table), err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.table)
	f.tableErr = err
}

func startHistory(t *testing.T, src Source, interval time.Duration) (*history, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(histT0)
	h, err := newHistory(src, fc, interval)
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	t.Cleanup(h.close)
	fc.Advance(0) // the first sample is due at once
	return h, fc
}

var (
	stateKey   = seriesKey{kind: seriesState, name: "VI_1"}
	latKey     = seriesKey{kind: seriesLatency, group: "TCP 192.0.2.100:80", name: "10.0.0.1:80 TCP_CHECK"}
	trafficKy  = seriesKey{kind: seriesTraffic, group: "TCP 192.0.2.100:80", name: "10.0.0.1:80"}
	allowPoint = cmp.AllowUnexported(point{})
)

// TestHistorySampling: on its clock, the history samples every interval:
// the instance's state (as an index of metricStates), the checker's
// latency, and the real server's bytes per second from the counter's
// difference, a restarted counter counted from zero.
func TestHistorySampling(t *testing.T) {
	src := histSource()
	h, fc := startHistory(t, src, 10*time.Second)
	at := func(d time.Duration) int64 { return histT0.Add(d).UnixNano() }

	src.set(func(st *Status) { st.Instances[0].State = "MASTER" })
	src.setTable(func(tb *Table) { tb.Services[0].Dests[0].Bytes = 6000 }, nil) // +5000 in 10 s
	fc.Advance(10 * time.Second)
	src.setTable(func(tb *Table) { tb.Services[0].Dests[0].Bytes = 300 }, nil) // restarted
	src.set(func(st *Status) { st.VirtualServers[0].RealServers[0].Checkers[0].Latency = 0.005 })
	fc.Advance(10 * time.Second)
	fc.Advance(5 * time.Second) // no sample due

	if diff := cmp.Diff([]point{{at(0), 1}, {at(10 * time.Second), 2}, {at(20 * time.Second), 2}}, h.get(stateKey), allowPoint); diff != "" {
		t.Errorf("state series (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]point{{at(0), 0.002}, {at(10 * time.Second), 0.002}, {at(20 * time.Second), 0.005}}, h.get(latKey), allowPoint); diff != "" {
		t.Errorf("latency series (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]point{{at(10 * time.Second), 500}, {at(20 * time.Second), 30}}, h.get(trafficKy), allowPoint); diff != "" {
		t.Errorf("traffic series (-want +got):\n%s", diff)
	}
}

// TestHistoryEviction: a reload that removes an instance, a real server
// or a service drops their series at the next sample; a live table that
// cannot be read keeps the traffic series.
func TestHistoryEviction(t *testing.T) {
	src := histSource()
	h, fc := startHistory(t, src, time.Second)
	fc.Advance(time.Second)
	for _, k := range []seriesKey{stateKey, latKey, trafficKy} {
		if h.get(k) == nil {
			t.Fatalf("no series %+v after two samples", k)
		}
	}
	src.setTable(func(*Table) {}, errors.New("netlink: busy"))
	fc.Advance(time.Second)
	if h.get(trafficKy) == nil {
		t.Errorf("traffic series dropped when the table could not be read")
	}
	src.set(func(st *Status) { st.Instances, st.VirtualServers = nil, nil })
	src.setTable(func(tb *Table) { tb.Services = nil }, nil)
	fc.Advance(time.Second)
	for _, k := range []seriesKey{stateKey, latKey, trafficKy} {
		if pts := h.get(k); pts != nil {
			t.Errorf("series %+v of a removed object kept: %v", k, pts)
		}
	}
	if len(h.series) != 0 || len(h.counters) != 0 {
		t.Errorf("after the removal: %d series, %d counters, want none", len(h.series), len(h.counters))
	}
}

// TestHistoryBound: however many samples and series, no ring grows past
// the points of the window and the number of series stays at the cap; the
// ones past it are counted.
func TestHistoryBound(t *testing.T) {
	src := &fakeSource{}
	const extra = 40
	for i := range historyMaxSeries + extra {
		src.st.Instances = append(src.st.Instances, InstanceStatus{Name: fmt.Sprintf("VI_%d", i), State: "MASTER"})
	}
	// As many real servers in the live table: their byte counters are
	// bounded too.
	src.st.Dataplane = "nft"
	src.table.Services = []TableService{{Protocol: "TCP", Address: "192.0.2.1:80"}}
	for i := range historyMaxSeries + extra {
		src.table.Services[0].Dests = append(src.table.Services[0].Dests, TableDest{Address: fmt.Sprintf("10.%d.%d.1:80", i/256, i%256)})
	}
	h, fc := startHistory(t, src, MinHistoryInterval)
	if h.points != historyMaxPoints {
		t.Fatalf("points per series at %s: %d, want %d", MinHistoryInterval, h.points, historyMaxPoints)
	}
	for range 2 * historyMaxPoints {
		fc.Advance(MinHistoryInterval)
	}
	// The instances come first and fill the cap; every real server is
	// refused, and extra of them also have no counter.
	if len(h.series) != historyMaxSeries || h.refused != extra+historyMaxSeries+extra {
		t.Errorf("%d series, %d refused; want %d and %d", len(h.series), h.refused, historyMaxSeries, extra+historyMaxSeries+extra)
	}
	if len(h.counters) != historyMaxSeries {
		t.Errorf("%d byte counters, want %d", len(h.counters), historyMaxSeries)
	}
	for k, r := range h.series {
		if len(r.pts) != historyMaxPoints || cap(r.pts) != historyMaxPoints {
			t.Fatalf("series %+v: %d points, capacity %d; want %d", k, len(r.pts), cap(r.pts), historyMaxPoints)
		}
	}
	// The newest points are kept, in order.
	pts := h.get(seriesKey{kind: seriesState, name: "VI_0"})
	if last := pts[len(pts)-1].t; last != fc.Now().UnixNano() {
		t.Errorf("last point at %v, want now (%v)", time.Unix(0, last), fc.Now())
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].t-pts[i-1].t != int64(MinHistoryInterval) {
			t.Fatalf("points %d and %d are %v apart, want %v", i-1, i, time.Duration(pts[i].t-pts[i-1].t), MinHistoryInterval)
		}
	}
	if h := mustHistory(t, DefaultHistoryInterval); h.points != 90 {
		t.Errorf("points per series at the default interval: %d, want 90", h.points)
	}
}

func mustHistory(t *testing.T, interval time.Duration) *history {
	t.Helper()
	h, err := newHistory(&fakeSource{}, clock.NewFake(histT0), interval)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHistoryInterval(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond * 999, historyWindow + time.Second} {
		if _, err := newHistory(&fakeSource{}, nil, d); err == nil {
			t.Errorf("interval %s accepted", d)
		}
	}
	if h := mustHistory(t, 0); h.interval != DefaultHistoryInterval {
		t.Errorf("zero interval gives %s, want the default", h.interval)
	}
}

// wellFormed parses s as XML and returns its elements' names.
func wellFormed(t *testing.T, s string) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	var names []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
		if e, ok := tok.(xml.StartElement); ok {
			names = append(names, e.Name.Local)
		}
	}
}

// TestLineChart: a known series lands on known coordinates (the plot is
// x 64..552 over the window, y 112 (zero) up to 8 (the largest value)),
// points before the window are left out, and names are escaped.
func TestLineChart(t *testing.T) {
	from, to := histT0, histT0.Add(historyWindow)
	lines := []chartLine{{Name: `<rs "1">`, Points: []point{
		{from.Add(-time.Minute).UnixNano(), 7},
		{from.UnixNano(), 0},
		{from.Add(historyWindow / 2).UnixNano(), 50},
		{to.UnixNano(), 100},
	}}, {Name: "rs2", Points: nil}}
	svg := string(lineChart(lines, from, to, pageRate))
	names := wellFormed(t, svg)
	if n := strings.Count(strings.Join(names, " "), "polyline"); n != 1 {
		t.Errorf("%d polylines, want 1 (rs2 has no point)", n)
	}
	if want := `points="64.0,112.0 308.0,60.0 552.0,8.0"`; !strings.Contains(svg, want) {
		t.Errorf("chart lacks %s:\n%s", want, svg)
	}
	for _, want := range []string{`data-series="&lt;rs &#34;1&#34;&gt;"`, `data-max="100"`, ">100 B/s<", ">-15m<", ">now<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s:\n%s", want, svg)
		}
	}
}

// TestStateBand: a run of samples in one state is one segment, lasting
// until the next state's first sample; the last lasts until now.
func TestStateBand(t *testing.T) {
	from, to := histT0, histT0.Add(historyWindow)
	m := func(d time.Duration) int64 { return from.Add(d).UnixNano() }
	pts := []point{{m(3 * time.Minute), 1}, {m(4 * time.Minute), 1}, {m(6 * time.Minute), 2}, {m(12 * time.Minute), 3}, {m(14 * time.Minute), 2}}
	svg := string(stateBand(pts, from, to))
	wellFormed(t, svg)
	got := regexp.MustCompile(`data-state="(\w+)" x="([\d.]+)" y="0" width="([\d.]+)"`).FindAllStringSubmatch(svg, -1)
	var segs []string
	for _, g := range got {
		segs = append(segs, g[1]+" "+g[2]+" "+g[3])
	}
	// 488 units for 15 minutes: 32.53 a minute.
	want := []string{"BACKUP 161.6 97.6", "MASTER 259.2 195.2", "FAULT 454.4 65.1", "MASTER 519.5 32.5"}
	if diff := cmp.Diff(want, segs); diff != "" {
		t.Errorf("segments (-want +got):\n%s\n%s", diff, svg)
	}
}

func TestSpreadBar(t *testing.T) {
	if got := spreadBar([]spreadPart{{"a", 0}}); got != "" {
		t.Errorf("no traffic: %q, want nothing", got)
	}
	svg := string(spreadBar([]spreadPart{{"10.0.0.1:80", 300}, {"10.0.0.2:80", 0}, {"10.0.0.3:80", 100}}))
	wellFormed(t, svg)
	for _, want := range []string{`data-name="10.0.0.1:80" data-share="75.0" x="64.0" y="0" width="366.0"`, `data-name="10.0.0.3:80" data-share="25.0" x="430.0" y="0" width="122.0"`, ">75%<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("bar lacks %s:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "10.0.0.2:80") {
		t.Errorf("a real server with no traffic has a segment:\n%s", svg)
	}
}

// TestPageCharts: the status page draws the history: a state band with a
// MASTER segment, the traffic chart with its line and spread bar, the
// latency chart; the page's SVGs are well-formed.
func TestPageCharts(t *testing.T) {
	src := histSource()
	src.set(func(st *Status) { st.Instances[0].State = "MASTER" })
	fc := clock.NewFake(histT0)
	h, err := NewHandler(src, slog.New(slog.DiscardHandler), HandlerOptions{Clock: fc, HistoryInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fc.Advance(0)
	for i := range 3 {
		src.setTable(func(tb *Table) { tb.Services[0].Dests[0].Bytes += uint64(1000 * (i + 1)) }, nil)
		fc.Advance(10 * time.Second)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	page, _ := httpGet(t, srv.URL+"/")
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1)
	if len(svgs) != 4 { // band, traffic, spread, latency
		t.Fatalf("%d SVGs in the page, want 4:\n%s", len(svgs), page)
	}
	for _, s := range svgs {
		wellFormed(t, s)
	}
	for _, want := range []string{
		`data-instance="VI_1"`, `data-state="MASTER"`,
		`<div class="card traffic" data-service="TCP 192.0.2.100:80">`, `data-series="10.0.0.1:80"`, `data-name="10.0.0.1:80" data-share="100.0"`,
		`<div class="card latency" data-service="TCP 192.0.2.100:80">`, `data-series="10.0.0.1:80 TCP_CHECK"`,
		"one sample every 10s",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// Three rates: 100, 200 and 300 B/s.
	if pts := regexp.MustCompile(`data-series="10.0.0.1:80" points="([^"]*)"`).FindStringSubmatch(page); pts == nil || len(strings.Fields(pts[1])) != 3 {
		t.Errorf("traffic polyline: %v, want 3 points", pts)
	}
	if !strings.Contains(page, `data-max="300"`) {
		t.Errorf("traffic chart's top is not 300 B/s")
	}
}

// BenchmarkHistorySample is one sample of a full history: 1,024 series
// (instances, checkers and real servers) with full rings.
func BenchmarkHistorySample(b *testing.B) {
	src := &fakeSource{st: Status{Dataplane: "nft"}, table: Table{Services: []TableService{{Protocol: "TCP", Address: "192.0.2.1:80"}}}}
	vs := VirtualServerStatus{Name: "192.0.2.1:80", Protocol: "TCP"}
	for i := range historyMaxSeries / 3 {
		src.st.Instances = append(src.st.Instances, InstanceStatus{Name: fmt.Sprintf("VI_%d", i), State: "MASTER"})
		vs.RealServers = append(vs.RealServers, RealServerStatus{IP: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Port: 80,
			Checkers: []CheckerStatus{{Type: "TCP_CHECK", LastRun: histT0, Latency: 0.001}}})
		src.table.Services[0].Dests = append(src.table.Services[0].Dests, TableDest{Address: fmt.Sprintf("10.0.%d.%d:80", i/256, i%256)})
	}
	src.st.VirtualServers = []VirtualServerStatus{vs}
	fc := clock.NewFake(histT0)
	h, err := newHistory(src, fc, DefaultHistoryInterval)
	if err != nil {
		b.Fatal(err)
	}
	h.start()
	defer h.close()
	for range h.points + 1 {
		fc.Advance(DefaultHistoryInterval)
	}
	b.ReportAllocs()
	for b.Loop() {
		fc.Advance(DefaultHistoryInterval)
	}
}
