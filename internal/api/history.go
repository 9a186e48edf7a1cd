package api

import (
	"fmt"
	"sync"
	"time"

	"tandem/internal/clock"
)

// The status page's charts cover the last historyWindow. The daemon keeps
// that history itself, so that the page needs nothing but the daemon (no
// Prometheus, no internet): one bounded ring of samples per series.
//
// Memory bound: at most historyMaxSeries series, each a ring of at most
// historyMaxPoints points of 16 bytes (a time and a value), allocated once
// when the series appears. That is 1024 × 900 × 16 B ≈ 14.7 MB at the
// shortest interval (1 s), and 1024 × 90 × 16 B ≈ 1.5 MB at the default
// 10 s, plus the series' names and at most historyMaxSeries byte counters
// (the previous reading, for the rates). Series past the cap are not kept (the page
// says how many); series whose object is gone (a reload removed the
// instance, the real server, the checker) are dropped at the next sample.
const (
	historyWindow = 15 * time.Minute
	// DefaultHistoryInterval is how often the history samples by default:
	// 90 points per series over the window.
	DefaultHistoryInterval = 10 * time.Second
	// MinHistoryInterval is the shortest interval allowed; it bounds the
	// points per series (historyMaxPoints).
	MinHistoryInterval = time.Second
	historyMaxPoints   = int(historyWindow / MinHistoryInterval)
	historyMaxSeries   = 1024
)

// seriesKind says what a series holds.
type seriesKind uint8

const (
	// seriesState is a VRRP instance's state, as an index into
	// metricStates.
	seriesState seriesKind = iota
	// seriesLatency is a checker's last latency, in seconds.
	seriesLatency
	// seriesTraffic is the bytes per second the data plane forwarded to a
	// real server.
	seriesTraffic
)

// seriesKey names a series: its kind, the chart it belongs to (empty for
// states; the virtual server or service) and its line in that chart.
type seriesKey struct {
	kind        seriesKind
	group, name string
}

// point is one sample: a time (Unix nanoseconds) and a value.
type point struct {
	t int64
	v float64
}

// ring holds the last cap(pts) points of a series; it never grows past
// the capacity it was made with.
type ring struct {
	pts  []point
	next int // where the next point goes once pts is full
}

func newRing(n int) *ring { return &ring{pts: make([]point, 0, n)} }

func (r *ring) add(p point) {
	if len(r.pts) < cap(r.pts) {
		r.pts = append(r.pts, p)
		return
	}
	r.pts[r.next] = p
	r.next = (r.next + 1) % len(r.pts)
}

// points returns a copy of the points, oldest first.
func (r *ring) points() []point {
	out := make([]point, 0, len(r.pts))
	out = append(out, r.pts[r.next:]...)
	return append(out, r.pts[:r.next]...)
}

// trafficCounter is a real server's byte counter at the previous sample,
// which the next one turns into a rate.
type trafficCounter struct {
	t     time.Time
	bytes uint64
}

// history samples a Source every interval on its clock and keeps the
// last historyWindow of each series.
type history struct {
	src      Source
	clk      clock.Clock
	interval time.Duration
	points   int // per series: historyWindow / interval, at most historyMaxPoints

	mu       sync.Mutex
	series   map[seriesKey]*ring
	counters map[seriesKey]trafficCounter
	refused  int // series not kept at the last sample: the cap was reached
	timer    clock.Timer
	stopped  bool
	running  sync.WaitGroup // a sample in progress, which close waits for
}

func newHistory(src Source, clk clock.Clock, interval time.Duration) (*history, error) {
	if interval == 0 {
		interval = DefaultHistoryInterval
	}
	if interval < MinHistoryInterval || interval > historyWindow {
		return nil, fmt.Errorf("history interval %s: want %s to %s", interval, MinHistoryInterval, historyWindow)
	}
	if clk == nil {
		clk = clock.Real
	}
	return &history{src: src, clk: clk, interval: interval, points: min(int(historyWindow/interval), historyMaxPoints),
		series: map[seriesKey]*ring{}, counters: map[seriesKey]trafficCounter{}}, nil
}

// start samples at once, then every interval, until close.
func (h *history) start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timer = h.clk.AfterFunc(0, h.tick)
}

func (h *history) tick() {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.running.Add(1)
	h.mu.Unlock()
	defer h.running.Done()
	h.sample()
	h.mu.Lock()
	if !h.stopped {
		h.timer = h.clk.AfterFunc(h.interval, h.tick)
	}
	h.mu.Unlock()
}

// close stops the sampling and waits for a sample in progress.
func (h *history) close() {
	h.mu.Lock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	h.running.Wait()
}

// sample reads the status (and the live table when there is a data
// plane) and adds a point to every series. The source is read outside
// the lock, so that the page never waits for the kernel.
func (h *history) sample() {
	now := h.clk.Now()
	st := h.src.Status()
	var table Table
	var tableErr error
	if st.Dataplane != "" {
		table, tableErr = h.src.Table()
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	live := map[seriesKey]bool{}
	h.refused = 0
	add := func(k seriesKey, v float64) {
		live[k] = true
		r, ok := h.series[k]
		if !ok {
			if len(h.series) >= historyMaxSeries {
				h.refused++
				return
			}
			r = newRing(h.points)
			h.series[k] = r
		}
		r.add(point{now.UnixNano(), v})
	}
	for _, in := range st.Instances {
		add(seriesKey{kind: seriesState, name: in.Name}, float64(stateIndex(in.State)))
	}
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.RealServers {
			for i, c := range rs.Checkers {
				k := latencyKey(vs, rs, i, c)
				if c.LastRun.IsZero() {
					live[k] = true // not run yet: nothing to plot, nothing to drop
					continue
				}
				add(k, c.Latency)
			}
		}
	}
	if st.Dataplane != "" && tableErr != nil {
		// The counters could not be read this time: keep what is there
		// rather than drop every traffic series.
		for k := range h.series {
			if k.kind == seriesTraffic {
				live[k] = true
			}
		}
	}
	for _, s := range table.Services {
		for _, d := range s.Dests {
			k := trafficKey(s, d)
			prev, ok := h.counters[k]
			if !ok && len(h.counters) >= historyMaxSeries {
				h.refused++ // the counters are bounded as the series are
				continue
			}
			h.counters[k] = trafficCounter{now, d.Bytes}
			if !ok {
				live[k] = true // the first reading gives no rate yet
				continue
			}
			dt := now.Sub(prev.t).Seconds()
			if dt <= 0 {
				live[k] = true
				continue
			}
			delta := d.Bytes - prev.bytes
			if d.Bytes < prev.bytes {
				delta = d.Bytes // the counter restarted (the real server was re-added)
			}
			add(k, float64(delta)/dt)
		}
	}
	for k := range h.series {
		if !live[k] {
			delete(h.series, k)
		}
	}
	for k := range h.counters {
		if !live[k] {
			delete(h.counters, k)
		}
	}
}

// get returns a copy of a series' points, oldest first (nil when there is
// no such series).
func (h *history) get(k seriesKey) []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.series[k]; ok {
		return r.points()
	}
	return nil
}

// latencyKey names a checker's latency series: in its virtual server's
// chart, one line per checker (a real server may have two of one type).
func latencyKey(vs VirtualServerStatus, rs RealServerStatus, i int, c CheckerStatus) seriesKey {
	name := rs.Address() + " " + c.Type
	if i > 0 {
		name += fmt.Sprintf(" #%d", i+1)
	}
	return seriesKey{kind: seriesLatency, group: vs.Protocol + " " + vs.Name, name: name}
}

// trafficKey names a real server's traffic series, in its service's chart.
func trafficKey(s TableService, d TableDest) seriesKey {
	return seriesKey{kind: seriesTraffic, group: s.Protocol + " " + s.Address, name: d.Address}
}

// stateIndex is a state's index in metricStates (-1: unknown).
func stateIndex(state string) int {
	for i, s := range metricStates {
		if s == state {
			return i
		}
	}
	return -1
}
