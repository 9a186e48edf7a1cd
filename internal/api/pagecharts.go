package api

import (
	"fmt"
	"html/template"
	"time"
)

// pageCharts are the status page's charts of the last historyWindow.
type pageCharts struct {
	Window, Interval time.Duration
	// Refused counts series the history could not keep (its cap).
	Refused int
	States  []pageBand
	Latency []pageChart
	Traffic []pageChart
}

// pageBand is one VRRP instance's state band.
type pageBand struct {
	Name string
	SVG  template.HTML
}

// pageChart is one chart: a virtual server's check latencies, or a
// service's traffic with its spread bar.
type pageChart struct {
	Title  string
	Keys   []pageKey
	SVG    template.HTML
	Spread template.HTML
}

// pageKey is a line's entry in a chart's legend.
type pageKey struct{ Name, Class string }

// charts draws the page's charts for the objects the status and the live
// table hold now, from the history's series.
func (h *history) charts(st Status, t Table) pageCharts {
	to := h.clk.Now()
	from := to.Add(-historyWindow)
	h.mu.Lock()
	pc := pageCharts{Window: historyWindow, Interval: h.interval, Refused: h.refused}
	h.mu.Unlock()
	for _, in := range st.Instances {
		pc.States = append(pc.States, pageBand{in.Name, stateBand(h.get(seriesKey{kind: seriesState, name: in.Name}), from, to)})
	}
	for _, vs := range st.VirtualServers {
		var lines []chartLine
		for _, rs := range vs.RealServers {
			for i, c := range rs.Checkers {
				k := latencyKey(vs, rs, i, c)
				lines = append(lines, chartLine{k.name, h.get(k)})
			}
		}
		if len(lines) > 0 {
			pc.Latency = append(pc.Latency, pageChart{Title: vs.Protocol + " " + vs.Name, Keys: chartKeys(lines), SVG: lineChart(lines, from, to, pageLatency)})
		}
	}
	for _, s := range t.Services {
		var lines []chartLine
		var parts []spreadPart
		for _, d := range s.Dests {
			k := trafficKey(s, d)
			pts := h.get(k)
			lines = append(lines, chartLine{d.Address, pts})
			// Each point is the rate over the interval before it.
			sum := 0.0
			for _, p := range pts {
				if p.t >= from.UnixNano() {
					sum += p.v * pc.Interval.Seconds()
				}
			}
			parts = append(parts, spreadPart{d.Address, sum})
		}
		if len(lines) > 0 {
			pc.Traffic = append(pc.Traffic, pageChart{Title: s.Protocol + " " + s.Address, Keys: chartKeys(lines),
				SVG: lineChart(lines, from, to, pageRate), Spread: spreadBar(parts)})
		}
	}
	return pc
}

func chartKeys(lines []chartLine) []pageKey {
	out := make([]pageKey, len(lines))
	for i, l := range lines {
		out[i] = pageKey{l.Name, fmt.Sprintf("c%d", i%chartPalette)}
	}
	return out
}
