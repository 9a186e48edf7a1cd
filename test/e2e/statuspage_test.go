package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tandem/internal/api"
	"tandem/internal/lab"
)

const (
	chromiumBin = "/usr/bin/chromium"
	// statusAddr is the HTTP listener's address inside the director's
	// namespace: the namespace is the lab's own, so a fixed port is free.
	statusAddr = "127.0.0.1:9400"
	// screenshotCopy is where the page's screenshot is kept for a person
	// to look at.
	screenshotCopy = "/tmp/tandem-status.png"
	// screenshotDoc is the copy the README shows, written with -update.
	screenshotDoc = "../../docs/img/status-page.png"
)

var updateScreenshot = flag.Bool("update", false, "TestStatusPage writes its screenshot to "+screenshotDoc)

// httpIn fetches http://statusAddr+path from inside node.
func httpIn(l *lab.Lab, node, path string) (string, error) {
	return l.HTTPGet(node, netip.MustParseAddrPort(statusAddr), path, 2*time.Second)
}

// chromium runs headless Chromium inside node with args and returns its
// standard output. The flags keep it off the network (which is closed
// here) and away from any profile: background networking, component
// updates and sync would otherwise reach out at start.
func chromium(t *testing.T, l *lab.Lab, node string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := l.Command(ctx, node, chromiumBin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// TestStatusPage runs seed004's master with --http, one real server up
// and one down, and looks at the status page in headless Chromium inside
// the director's namespace: the DOM has the instance and both real
// servers, the screenshot is a 1280x1000 PNG with something drawn on it.
// /metrics and /status.json are read from the same listener. The charts'
// history samples every second (--history-interval 1s) while the client
// sends requests for a few seconds: the DOM has a MASTER segment in VI_1's
// state band, traffic and latency lines of several points for rs1, and
// rs1's whole share of the traffic in the spread bar.
func TestStatusPage(t *testing.T) {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("%s is missing (apt-get install chromium): %v", chromiumBin, err)
	}
	l := lab.NewT(t, lab.Seed004().Spec())
	vip := netip.MustParseAddr("172.16.0.30")
	carryVIP(t, l, "rs1", vip)
	carryVIP(t, l, "rs2", vip)
	startNginx(t, l, "rs1") // rs2 has no server: its row shows DOWN
	d := startTandem(t, l, "dir1", seedConf(t, "seed004-lvs-dr-master.conf"), "--http", statusAddr, "--history-interval", "1s")
	const vs = "172.16.0.30:80"
	waitFor(t, "dir1 MASTER", 10*time.Second, func() bool { return d.state("VI_1") == "MASTER" })
	waitFor(t, "rs1 healthy, rs2 not", 20*time.Second, func() bool {
		st, err := d.status()
		if err != nil {
			return false
		}
		rs1, ok1 := findRSIn(st, vs, "172.16.0.31")
		rs2, ok2 := findRSIn(st, vs, "172.16.0.32")
		return ok1 && ok2 && rs1.Healthy && !rs2.Healthy && len(rs2.Checkers) > 0 && rs2.Checkers[0].LastResult == "failed"
	})
	target := netip.AddrPortFrom(vip, 80)
	waitFor(t, "the client served", 5*time.Second, func() bool { _, err := get(l, target); return err == nil })
	// Traffic for the live table's counters and the traffic chart: a few
	// seconds of it, so that the history has several rates.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		spread(l, target, 5)
		time.Sleep(200 * time.Millisecond)
	}

	// The latency histogram is sampled every 500 ms, and rs1's first
	// check may not have been sampled yet on a loaded machine.
	var metrics string
	waitFor(t, "rs1's check latency sampled", 10*time.Second, func() bool {
		var err error
		metrics, err = httpIn(l, "dir1", "/metrics")
		return err == nil && strings.Contains(metrics, `tandem_check_latency_seconds_count{checker="TCP_CHECK",protocol="TCP",real_server="172.16.0.31:80",result="ok"`)
	})
	for _, want := range []string{
		`tandem_vrrp_state{instance="VI_1",state="MASTER",vip="172.16.0.30",vrid="51"} 1`,
		`tandem_vrrp_adverts_dropped_total{instance="VI_1",reason="auth"} 0`,
		`tandem_real_server_healthy{protocol="TCP",real_server="172.16.0.31:80",virtual_server="172.16.0.30:80"} 1`,
		`tandem_real_server_healthy{protocol="TCP",real_server="172.16.0.32:80",virtual_server="172.16.0.30:80"} 0`,
		`tandem_check_latency_seconds_count{checker="TCP_CHECK",protocol="TCP",real_server="172.16.0.31:80",result="ok",virtual_server="172.16.0.30:80"}`,
		`tandem_dataplane_packets_total{protocol="TCP",real_server="172.16.0.31:80",service="172.16.0.30:80"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	doc, err := httpIn(l, "dir1", "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(doc), &st); err != nil || len(st.Instances) != 1 || st.Instances[0].Name != "VI_1" {
		t.Errorf("/status.json: %v, instances %+v", err, st.Instances)
	}

	url := "http://" + statusAddr + "/"
	// The virtual time budget lets the page refresh itself (every 2 s)
	// before the dump: the rows must survive the in-place refresh.
	dom := string(chromium(t, l, "dir1", "--virtual-time-budget=5000", "--dump-dom", url))
	for _, want := range []string{
		`<tr class="instance" data-name="VI_1">`,
		`<span class="badge s-master">MASTER</span>`,
		`<tr class="rs" data-address="172.16.0.31:80">`,
		`<tr class="rs rs-down" data-address="172.16.0.32:80">`,
		`<table id="dataplane">`,
		"entering MASTER",
		`<div class="bandrow" data-instance="VI_1">`,
		`data-state="MASTER"`,
		`<div class="card traffic" data-service="TCP 172.16.0.30:80">`,
		`<div class="card latency" data-service="TCP 172.16.0.30:80">`,
		`data-name="172.16.0.31:80" data-share="100.0"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("Chromium's DOM of the status page lacks %q", want)
		}
	}
	for _, series := range []string{"172.16.0.31:80", "172.16.0.31:80 TCP_CHECK"} {
		if n := polylinePoints(dom, series); n < 4 {
			t.Errorf("series %s: polyline of %d points, want 4 or more", series, n)
		}
	}
	if top := trafficTop(dom); top <= 0 {
		t.Errorf("traffic chart's largest rate is %g B/s, want some traffic", top)
	} else {
		t.Logf("traffic chart's largest rate: %g B/s", top)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, l, "dir1", "--screenshot="+shot, "--window-size=1280,1000", "--hide-scrollbars", url)
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(b))
	if err := os.WriteFile(screenshotCopy, b, 0o644); err != nil {
		t.Logf("keeping a copy of the screenshot: %v", err)
	}
	if *updateScreenshot {
		if err := os.WriteFile(screenshotDoc, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got != image.Pt(1280, 1000) {
		t.Errorf("screenshot is %v, want 1280x1000", got)
	}
	// A blank or error page has a handful of colours; the page's text,
	// header and badges, anti-aliased, have hundreds.
	if n := colours(img); n < 100 {
		t.Errorf("screenshot has %d distinct colours: blank?", n)
	} else {
		t.Logf("screenshot: %d distinct colours, copy in %s", n, screenshotCopy)
	}
}

// polylinePoints counts the points of the chart line named series in dom
// (0 when there is none).
func polylinePoints(dom, series string) int {
	m := regexp.MustCompile(fmt.Sprintf(`data-series="%s" points="([^"]*)"`, regexp.QuoteMeta(series))).FindStringSubmatch(dom)
	if m == nil {
		return 0
	}
	return len(strings.Fields(m[1]))
}

// trafficTop is the largest rate of the first traffic chart in dom (-1
// when there is none).
func trafficTop(dom string) float64 {
	m := regexp.MustCompile(`(?s)class="card traffic".*?data-max="([^"]*)"`).FindStringSubmatch(dom)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// findRSIn finds a real server of a virtual server in a status.
func findRSIn(st api.Status, vsName, ip string) (api.RealServerStatus, bool) {
	for _, vs := range st.VirtualServers {
		if vs.Name != vsName {
			continue
		}
		for _, rs := range vs.RealServers {
			if rs.IP == ip {
				return rs, true
			}
		}
	}
	return api.RealServerStatus{}, false
}

func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c0, c1, c2, c3 := img.At(x, y).RGBA()
			seen[[4]uint32{c0, c1, c2, c3}] = true
		}
	}
	return len(seen)
}
