package api

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
)

// The charts are SVG drawn here, in the page's HTML: the page then works
// where there is no internet (no CDN, no script library), its in-place
// refresh redraws them with the rest, and a browser without JavaScript
// still shows them. Colours come from the page's CSS classes (c0..c7 for
// lines, st-* for states), so the markup carries no styles.

// Chart geometry, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH  = 560, 130
	chartLeft       = 64 // room for the value labels
	chartRight      = 8
	chartTop        = 8
	chartBottom     = 18 // room for the time labels
	bandH           = 16
	chartPalette    = 8 // colour classes c0..c7
	chartSpreadText = 34
)

// chartLine is one line of a chart.
type chartLine struct {
	Name   string
	Points []point
}

// chartX maps a time in [from, to] to x.
func chartX(t int64, from, to time.Time) float64 {
	span := float64(to.UnixNano() - from.UnixNano())
	return chartLeft + float64(t-from.UnixNano())/span*(chartW-chartLeft-chartRight)
}

// lineChart draws lines over [from, to], values from 0 up to the largest,
// labelled with format.
func lineChart(lines []chartLine, from, to time.Time, format func(float64) string) template.HTML {
	top := 0.0
	for _, l := range lines {
		for _, p := range l.Points {
			top = max(top, p.v)
		}
	}
	scale := top
	if scale <= 0 {
		scale = 1
	}
	y := func(v float64) float64 { return chartTop + (1-v/scale)*(chartH-chartTop-chartBottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" data-max="%g">`, chartW, chartH, top)
	chartFrame(&b, from, to, chartH-chartBottom)
	fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, chartTop, chartW-chartRight, chartTop)
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%s</text>`, chartLeft-4, chartTop+4, html.EscapeString(format(top)))
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">0</text>`, chartLeft-4, chartH-chartBottom)
	for i, l := range lines {
		var pts []string
		var last point
		for _, p := range l.Points {
			if p.t < from.UnixNano() {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", chartX(p.t, from, to), y(p.v)))
			last = p
		}
		if len(pts) == 0 {
			continue
		}
		c := i % chartPalette
		fmt.Fprintf(&b, `<polyline class="line c%d" data-series="%s" points="%s"><title>%s</title></polyline>`,
			c, html.EscapeString(l.Name), strings.Join(pts, " "), html.EscapeString(l.Name))
		// The last value as a dot: a series of one point shows too.
		fmt.Fprintf(&b, `<circle class="dot c%d" cx="%.1f" cy="%.1f" r="2.5"><title>%s: %s</title></circle>`,
			c, chartX(last.t, from, to), y(last.v), html.EscapeString(l.Name), html.EscapeString(format(last.v)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// chartFrame draws the time axis at y base: the baseline and a label
// every 5 minutes back from to.
func chartFrame(b *strings.Builder, from, to time.Time, base int) {
	fmt.Fprintf(b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, base, chartW-chartRight, base)
	for back := time.Duration(0); to.Add(-back).After(from) || to.Add(-back).Equal(from); back += 5 * time.Minute {
		label := "now"
		if back > 0 {
			label = fmt.Sprintf("-%dm", int(back.Minutes()))
		}
		anchor := "middle"
		if back == 0 {
			anchor = "end"
		}
		fmt.Fprintf(b, `<text class="axis" x="%.1f" y="%d" text-anchor="%s">%s</text>`, chartX(to.Add(-back).UnixNano(), from, to), base+13, anchor, label)
	}
}

// stateBand draws a VRRP instance's states over [from, to] as coloured
// segments: each sample's state lasts until the next sample, the last one
// until to. Before the first sample the band is empty.
func stateBand(pts []point, from, to time.Time) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="band" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d">`, chartW, bandH+chartBottom)
	fmt.Fprintf(&b, `<rect class="empty" x="%d" y="0" width="%d" height="%d"/>`, chartLeft, chartW-chartLeft-chartRight, bandH)
	for i := 0; i < len(pts); {
		j := i + 1
		for j < len(pts) && pts[j].v == pts[i].v {
			j++ // one segment per run of the same state
		}
		start, end := max(pts[i].t, from.UnixNano()), to.UnixNano()
		if j < len(pts) {
			end = pts[j].t
		}
		if end > start {
			name := "UNKNOWN"
			if s := int(pts[i].v); s >= 0 && s < len(metricStates) {
				name = metricStates[s]
			}
			x0, x1 := chartX(start, from, to), chartX(end, from, to)
			fmt.Fprintf(&b, `<rect class="st-%s" data-state="%s" x="%.1f" y="0" width="%.1f" height="%d"><title>%s %s–%s</title></rect>`,
				strings.ToLower(name), name, x0, x1-x0, bandH, name,
				time.Unix(0, start).Local().Format("15:04:05"), time.Unix(0, end).Local().Format("15:04:05"))
		}
		i = j
	}
	chartFrame(&b, from, to, bandH)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// spreadPart is one real server's share of a service's traffic.
type spreadPart struct {
	Name  string
	Bytes float64
}

// spreadBar draws the shares of parts as one bar, in the colours of the
// service's traffic chart (same order); nothing when there was no
// traffic.
func spreadBar(parts []spreadPart) template.HTML {
	total := 0.0
	for _, p := range parts {
		total += p.Bytes
	}
	if total <= 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spread" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d">`, chartW, bandH)
	x := float64(chartLeft)
	for i, p := range parts {
		share := p.Bytes / total
		w := share * (chartW - chartLeft - chartRight)
		if w <= 0 {
			continue
		}
		fmt.Fprintf(&b, `<rect class="bar c%d" data-name="%s" data-share="%.1f" x="%.1f" y="0" width="%.1f" height="%d"><title>%s: %.1f%%</title></rect>`,
			i%chartPalette, html.EscapeString(p.Name), share*100, x, w, bandH, html.EscapeString(p.Name), share*100)
		if w >= chartSpreadText {
			fmt.Fprintf(&b, `<text class="share" x="%.1f" y="%d" text-anchor="middle">%.0f%%</text>`, x+w/2, bandH-4, share*100)
		}
		x += w
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">share</text>`, chartLeft-4, bandH-4)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// pageRate formats bytes per second.
func pageRate(v float64) string { return pageBytes(uint64(v)) + "/s" }
