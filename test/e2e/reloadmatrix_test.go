package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/api"
	"tandem/internal/lab"
	"tandem/internal/notify/smtptest"
)

// advert is one VRRP advertisement seen on the wire.
type advert struct {
	at     time.Time
	src    string
	prio   int
	advert int
}

// advertLog reads a tshark running in the background, one advert a line.
type advertLog struct {
	mu  sync.Mutex
	ads []advert
}

func (a *advertLog) since(t time.Time) []advert {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []advert
	for _, ad := range a.ads {
		if !ad.at.Before(t) {
			out = append(out, ad)
		}
	}
	return out
}

// watchAdverts runs tshark on node's eth0 for the rest of the test and
// decodes the adverts it prints (FIELD-NOTES: vrrp.prio, vrrp.adver_int).
func watchAdverts(t *testing.T, l *lab.Lab, node string) *advertLog {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is needed to read the adverts on the wire (apt-get install tshark)")
	}
	a := &advertLog{}
	// tshark keeps what it captures in a file under TMPDIR, which it
	// leaves there when it is killed: in the test's own directory, it goes
	// with the test.
	p, err := l.Start(node, "env", "TMPDIR="+t.TempDir(), "tshark", "-l", "-n", "-i", "eth0", "-f", "ip proto 112", "-T", "fields", "-E", "separator=,",
		"-e", "frame.time_epoch", "-e", "ip.src", "-e", "vrrp.prio", "-e", "vrrp.adver_int")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		seen := 0
		for {
			select {
			case <-p.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			sc := bufio.NewScanner(strings.NewReader(p.Output()))
			var ads []advert
			for sc.Scan() {
				f := strings.Split(sc.Text(), ",")
				if len(f) != 4 {
					continue
				}
				sec, err1 := strconv.ParseFloat(f[0], 64)
				prio, err2 := strconv.Atoi(f[2])
				adv, err3 := strconv.Atoi(f[3])
				if err1 != nil || err2 != nil || err3 != nil {
					continue
				}
				ads = append(ads, advert{at: time.Unix(0, int64(sec*1e9)), src: f[1], prio: prio, advert: adv})
			}
			if len(ads) > seen {
				seen = len(ads)
				a.mu.Lock()
				a.ads = ads
				a.mu.Unlock()
			}
		}
	}()
	return a
}

// reloadApplied sends SIGHUP to d and returns when d has applied the
// reload (api.ReloadApplied).
func reloadApplied(t *testing.T, d *daemon) time.Time {
	t.Helper()
	sent := time.Now()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	at, err := api.ReloadApplied(ctx, d.socket, sent)
	if err != nil {
		t.Fatalf("%s: %v", d.node, err)
	}
	return at
}

// TestReloadMatrix edits one setting at a time on a running DR pair with a
// client loop through the VIP, and reloads: every edit applies in place.
// Each row asserts that neither director changed VRRP state, that no
// client request failed, the exact number of data-plane operations, and
// that the new setting is in effect. The notify script and SMTP rows are
// proved by the failover at the end: dir2 becoming master runs the new
// script and mails the new server only.
func TestReloadMatrix(t *testing.T) {
	l := lab.NewT(t, lab.Seed000().Spec())
	vip := netip.MustParseAddr("172.16.7.5")
	for _, rs := range []string{"rs1", "rs2"} {
		carryVIP(t, l, rs, vip)
		startNginx(t, l, rs)
	}
	dir := t.TempDir()
	chk := writeScript(t, dir, "chk.sh", "#!/bin/sh\nexit 0\n")
	record := func(name string) (script, out string) {
		out = filepath.Join(dir, name+".out")
		return writeScript(t, dir, name+".sh", fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\n", out)), out
	}
	notifyA, outA := record("notifyA")
	notifyB, outB := record("notifyB")
	// Both mail servers listen in dir2, the director whose failover at
	// the end proves the SMTP edit. (Their listening sockets are made in
	// dir2 and stay there; their accept loops may run on any thread.
	// Start fails t only if it cannot listen.)
	var smtpA, smtpB *smtptest.Server
	if err := l.Do("dir2", func() error {
		smtpA, smtpB = smtptest.Start(t), smtptest.Start(t)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ads := watchAdverts(t, l, "client")
	if err := l.DropTCP("rs1", lab.SilentPort); err != nil {
		t.Fatal(err)
	}

	cur := lab.PairConf{Prio: 100, Advert: 1, Notify: notifyA, SMTP: smtpA.Addr, Check: chk, TrackWeight: 10, RSWeight: 1, Timeout: 3, Quorum: 1}
	confs := map[string]string{"dir1": filepath.Join(dir, "dir1.conf"), "dir2": filepath.Join(dir, "dir2.conf")}
	write := func(m lab.PairConf) {
		for node, p := range confs {
			if err := os.WriteFile(p, []byte(m.Conf(node)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(cur)
	dir1 := startTandem(t, l, "dir1", confs["dir1"], "--dataplane", "nft")
	dir2 := startTandem(t, l, "dir2", confs["dir2"], "--dataplane", "nft")
	const vs = "172.16.7.5:80"
	waitFor(t, "dir1 MASTER, dir2 BACKUP, both real servers healthy on both", 20*time.Second, func() bool {
		return dir1.state("VI_1") == "MASTER" && dir2.state("VI_1") == "BACKUP" &&
			dir1.healthy(vs, "172.16.7.3") && dir1.healthy(vs, "172.16.7.4") && dir2.healthy(vs, "172.16.7.3") && dir2.healthy(vs, "172.16.7.4")
	})
	waitFor(t, "dir1 advertising its tracked priority", 10*time.Second, func() bool { return dir1.instance(t, "VI_1").EffectivePriority == 110 })
	if _, err := get(l, netip.AddrPortFrom(vip, 80)); err != nil {
		t.Fatalf("the client through the VIP before any reload: %v", err)
	}
	time.Sleep(time.Second) // the initial reconciles settle
	// The rows read the adverts from here on: the capture must be running.
	waitFor(t, "dir1's adverts on the capture", 10*time.Second, func() bool { return len(ads.since(time.Time{})) > 0 })

	type snap struct {
		transitions, ops uint64
	}
	snapshot := func(d *daemon) snap {
		st, err := d.status()
		if err != nil {
			t.Fatal(err)
		}
		var s snap
		for _, in := range st.Instances {
			s.transitions += in.Transitions
		}
		s.ops = st.DataplaneOps
		return s
	}
	vrrpEvents := func(d *daemon, since time.Time) []string {
		st, err := d.status()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range st.Events {
			if e.Kind == "vrrp" && e.Time.After(since) {
				out = append(out, e.Object+" "+e.Message)
			}
		}
		return out
	}
	// wireAdvert waits for an advert from dir1, sent after since, that
	// satisfies ok.
	wireAdvert := func(t *testing.T, since time.Time, what string, ok func(advert) bool) {
		t.Helper()
		waitFor(t, what+" on the wire", 10*time.Second, func() bool {
			for _, ad := range ads.since(since) {
				if ad.src == "172.16.7.1" && ok(ad) {
					return true
				}
			}
			return false
		})
	}

	oldRecord := 0 // the old notify script's output at the reload that replaced it
	for _, row := range []struct {
		name string
		edit func(*lab.PairConf)
		ops  uint64 // data-plane operations on each director
		// effect checks that the new setting is in force; applied is when
		// the last director applied the reload.
		effect func(t *testing.T, applied time.Time)
	}{
		{"priority up", func(m *lab.PairConf) { m.Prio = 120 }, 0, func(t *testing.T, at time.Time) {
			wireAdvert(t, at, "priority 130", func(a advert) bool { return a.prio == 130 })
		}},
		{"priority down, still winning", func(m *lab.PairConf) { m.Prio = 95 }, 0, func(t *testing.T, at time.Time) {
			wireAdvert(t, at, "priority 105", func(a advert) bool { return a.prio == 105 })
		}},
		{"VIP added", func(m *lab.PairConf) { m.ExtraVIP = true }, 0, func(t *testing.T, at time.Time) {
			waitFor(t, "the master holding the added VIP", 3*time.Second, func() bool {
				return holds(t, l, "dir1", "eth0", netip.MustParseAddr("172.16.7.6"))
			})
			if err := l.Ping("client", netip.MustParseAddr("172.16.7.6"), 5*time.Second); err != nil {
				t.Errorf("the client to the added VIP: %v", err)
			}
			if holds(t, l, "dir2", "eth0", netip.MustParseAddr("172.16.7.6")) {
				t.Error("the backup took the added VIP")
			}
		}},
		{"VIP removed", func(m *lab.PairConf) { m.ExtraVIP = false }, 0, func(t *testing.T, at time.Time) {
			waitFor(t, "the master dropping the removed VIP", 3*time.Second, func() bool {
				return !holds(t, l, "dir1", "eth0", netip.MustParseAddr("172.16.7.6"))
			})
		}},
		{"route", func(m *lab.PairConf) { m.Route = true }, 0, func(t *testing.T, at time.Time) {
			waitFor(t, "the master's route 10.99.0.0/24 via 172.16.7.3", 3*time.Second, func() bool {
				found := false
				if err := l.Do("dir1", func() error {
					rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
					for _, r := range rs {
						found = found || r.Dst != nil && r.Dst.String() == "10.99.0.0/24" && r.Gw.String() == "172.16.7.3"
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return found
			})
		}},
		{"notify script", func(m *lab.PairConf) { m.Notify = notifyB }, 0, func(t *testing.T, at time.Time) {
			// What the old script wrote so far was for transitions
			// before the reload.
			b, _ := os.ReadFile(outA)
			oldRecord = len(b)
		}},
		{"smtp settings", func(m *lab.PairConf) { m.SMTP = smtpB.Addr }, 0, func(t *testing.T, at time.Time) {
			// What the old server took so far was sent before the
			// reload; from here on it must get nothing.
			smtpA.Pending()
		}},
		{"track weight", func(m *lab.PairConf) { m.TrackWeight = 20 }, 0, func(t *testing.T, at time.Time) {
			wireAdvert(t, at, "priority 115", func(a advert) bool { return a.prio == 115 })
		}},
		{"real-server weight", func(m *lab.PairConf) { m.RSWeight = 2 }, 1, func(t *testing.T, at time.Time) {
			list, found := lvsList(t, l, dir1), false
			for _, line := range strings.Split(list, "\n") {
				f := strings.Fields(line)
				found = found || len(f) >= 4 && f[1] == "172.16.7.4:80" && f[3] == "2"
			}
			if !found {
				t.Errorf("the new weight is not in dir1's data plane:\n%s", list)
			}
		}},
		{"checker timeout", func(m *lab.PairConf) { m.Timeout = 2 }, 0, func(t *testing.T, at time.Time) {
			// The checker of the silent port runs until its timeout: a
			// run that began after the reload takes 2 s, not 3.
			var took time.Duration
			var last string
			waitFor(t, "a run of the silent port's checker begun after the reload", 10*time.Second, func() bool {
				st, err := dir1.status()
				if err != nil || len(st.VirtualServers) != 2 || len(st.VirtualServers[1].RealServers) != 1 {
					return false
				}
				for _, c := range st.VirtualServers[1].RealServers[0].Checkers {
					took, last = time.Duration(c.Latency*float64(time.Second)), c.LastResult+" "+c.LastError
					if c.LastRun.Add(-took).After(at) {
						return true
					}
				}
				return false
			})
			if took < 2*time.Second || took >= 3*time.Second {
				t.Errorf("the checker gave up after %v with connect_timeout 2 (was 3): %s", took, last)
			}
		}},
		{"quorum", func(m *lab.PairConf) { m.Quorum = 4 }, 0, func(t *testing.T, at time.Time) {
			for _, d := range []*daemon{dir1, dir2} {
				st, err := d.status()
				if err != nil {
					t.Fatal(err)
				}
				if len(st.VirtualServers) == 0 || st.VirtualServers[0].Quorum != 4 || !st.VirtualServers[0].QuorumOK {
					t.Errorf("%s: want quorum 4, met by weight 5: %+v", d.node, st.VirtualServers)
				}
			}
		}},
		// Last: the rows after it would wait twice as long for a lost master.
		{"advert", func(m *lab.PairConf) { m.Advert = 2 }, 0, func(t *testing.T, at time.Time) {
			wireAdvert(t, at, "advert_int 2", func(a advert) bool { return a.advert == 2 })
		}},
	} {
		t.Run(row.name, func(t *testing.T) {
			next := cur
			row.edit(&next)
			if next == cur {
				t.Fatal("test premise: the edit changes nothing")
			}
			before := map[*daemon]snap{dir1: snapshot(dir1), dir2: snapshot(dir2)}
			checkers := checkerChanges(t, dir1)
			start := time.Now()
			load := l.HTTPLoad("client", netip.AddrPortFrom(vip, 80), 20*time.Millisecond, 500*time.Millisecond)
			write(next)
			cur = next
			// The backup first: a VRRPv2 backup drops adverts whose
			// interval differs from its own (RFC 3768 7.1), so the two
			// differ for the least time this way round as well.
			reloadApplied(t, dir2)
			applied := reloadApplied(t, dir1)
			if row.effect != nil {
				row.effect(t, applied)
			}
			// Long enough for a backup that lost the master to take over
			// (3 adverts), and for the client to notice.
			time.Sleep(time.Duration(3*next.Advert)*time.Second + 500*time.Millisecond)
			ok, failed := load.Stop()
			if len(failed) > 0 {
				t.Errorf("%d of %d client requests failed: %s", len(failed), ok+len(failed), strings.Join(failed, "; "))
			}
			if ok == 0 {
				t.Error("the client loop made no request")
			}
			for _, d := range []*daemon{dir1, dir2} {
				after := snapshot(d)
				if after.transitions != before[d].transitions || len(vrrpEvents(d, start)) > 0 {
					t.Errorf("%s: VRRP transitions %d -> %d, events %q", d.node, before[d].transitions, after.transitions, vrrpEvents(d, start))
				}
				if after.ops != before[d].ops+row.ops {
					t.Errorf("%s: data-plane operations %d -> %d, want %d more", d.node, before[d].ops, after.ops, row.ops)
				}
			}
			for _, ad := range ads.since(start) {
				if ad.src != "172.16.7.1" || ad.prio == 0 {
					t.Errorf("advert from %s priority %d during the reload: only dir1 may advertise, never priority 0", ad.src, ad.prio)
					break
				}
			}
			if got := checkerChanges(t, dir1); got != checkers {
				t.Errorf("a checker's state was reset: last changes %s -> %s", checkers, got)
			}
			if st := dir1.instance(t, "VI_1"); st.State != "MASTER" {
				t.Errorf("dir1 is %s", st.State)
			}
		})
	}

	// The notify script and SMTP rows: dir2 takes over when dir1 stops
	// and tells the new script and the new server, not the old ones.
	t.Run("notify and smtp in effect", func(t *testing.T) {
		if err := dir1.proc.Stop(10 * time.Second); err != nil {
			t.Logf("dir1 stop: %v", err)
		}
		waitFor(t, "dir2 MASTER", 15*time.Second, func() bool { return dir2.state("VI_1") == "MASTER" })
		waitFor(t, "the new notify script's record of MASTER", 5*time.Second, func() bool {
			b, _ := os.ReadFile(outB)
			return strings.Contains(string(b), "INSTANCE VI_1 MASTER 90")
		})
		if b, _ := os.ReadFile(outA); len(b) > oldRecord {
			t.Errorf("the old notify script ran after the reload that replaced it: %q", b[oldRecord:])
		}
		for m := smtpB.Next(t, 10*time.Second); !strings.Contains(m.Data, "Subject: [dir2] VRRP Instance VI_1 - Entering MASTER state"); m = smtpB.Next(t, 10*time.Second) {
			t.Logf("the new SMTP server got, before dir2's MASTER alert: %.200q", m.Data)
		}
		if old := smtpA.Pending(); len(old) > 0 {
			t.Errorf("the old SMTP server got %d messages after the reload: %q", len(old), old[0].Data)
		}
	})
}

// checkerChanges is the last state change of every checker of d, so that
// a row can tell that a reload did not start a checker over.
func checkerChanges(t *testing.T, d *daemon) string {
	t.Helper()
	st, err := d.status()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.RealServers {
			for _, c := range rs.Checkers {
				fmt.Fprintf(&b, "%s:%d %s %v; ", rs.IP, rs.Port, c.Type, c.LastChange.Format(time.RFC3339Nano))
			}
		}
	}
	return b.String()
}
