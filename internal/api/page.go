package api

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// pageEvents is how many of the most recent events the page lists.
const pageEvents = 50

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"lower":   strings.ToLower,
	"ago":     pageAgo,
	"drops":   pageDrops,
	"bytes":   pageBytes,
	"latency": pageLatency,
	"minutes": func(d time.Duration) int { return int(d.Minutes()) },
	"clock":   func(t time.Time) string { return t.Local().Format("15:04:05") },
	"stamp":   func(t time.Time) string { return t.Local().Format(time.RFC3339) },
}).Parse(pageHTML))

// pageData is what the status page shows: the status, the live table,
// and the totals of its summary line.
type pageData struct {
	Host     string
	Now      time.Time
	St       Status
	Table    Table
	TableErr string
	Events   []Event // newest first
	Charts   pageCharts

	Masters, RealServers, Healthy, QuorumLost int
}

// page renders the status page. It is rendered into a buffer first so
// that a template error gives a 500, not half a page.
func (h *Handler) page(w http.ResponseWriter, _ *http.Request) {
	st := h.src.Status()
	d := pageData{Now: time.Now(), St: st}
	// The host name tells apart the directors of a pair, whose pages
	// look alike.
	d.Host, _ = os.Hostname()
	if st.Dataplane != "" {
		t, err := h.src.Table()
		if err != nil {
			d.TableErr = err.Error()
		}
		d.Table = t
	}
	d.Charts = h.hist.charts(st, d.Table)
	for i := len(st.Events) - 1; i >= 0 && len(d.Events) < pageEvents; i-- {
		d.Events = append(d.Events, st.Events[i])
	}
	for _, in := range st.Instances {
		if in.State == "MASTER" {
			d.Masters++
		}
	}
	for _, vs := range st.VirtualServers {
		if !vs.QuorumOK {
			d.QuorumLost++
		}
		for _, rs := range vs.RealServers {
			d.RealServers++
			if rs.Healthy {
				d.Healthy++
			}
		}
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		h.log.Error("status page", "err", err)
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := w.Write(buf.Bytes()); err != nil {
		h.log.Debug("status page write", "err", err)
	}
}

// pageAgo is how long before now t was, to the second ("-" for never).
func pageAgo(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < 0:
		return "0s"
	case d < time.Hour:
		return d.String()
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// pageDrop is one drop reason and its count, for the page.
type pageDrop struct {
	Reason string
	N      uint64
}

// pageDrops lists the reasons that dropped packets, most first.
func pageDrops(m map[string]uint64) []pageDrop {
	var out []pageDrop
	for r, n := range m {
		if n > 0 {
			out = append(out, pageDrop{r, n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

func pageBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func pageLatency(s float64) string {
	switch {
	case s <= 0:
		return ""
	case s < 1e-3:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1f ms", s*1e3)
	}
	return fmt.Sprintf("%.2f s", s)
}
