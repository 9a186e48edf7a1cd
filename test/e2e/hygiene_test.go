package e2e

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"tandem/internal/lab"
	"tandem/internal/netio"
	"tandem/internal/vrrp"
)

// TestCrashLeftoversRemoved: a crash leaves the VIP on the dead node; a
// Tandem started there again removes it before anything else, even when it
// stays BACKUP.
func TestCrashLeftoversRemoved(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka1 := startTandem(t, l, "ka1", seedConf(t, "seed001-vip-ka1.conf"))
	ka2 := startTandem(t, l, "ka2", seedConf(t, "seed001-vip-ka2.conf"))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })
	if err := ka1.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka2 MASTER", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	if !holds(t, l, "ka1", "ens33", vip001) {
		t.Fatal("expected the crashed node to keep its VIP (FIELD-NOTES); the test premise is wrong")
	}
	ka1 = startTandem(t, l, "ka1", writeConf(t, "low.conf", vrrpConf(2, 80, "1", `    authentication {
        auth_type PASS
        auth_pass 123456
    }`)))
	if holds(t, l, "ka1", "ens33", vip001) {
		t.Error("the restarted daemon did not remove the VIP its crashed run left")
	}
	time.Sleep(4 * time.Second)
	if ka1.state("VI_1") != "BACKUP" || holds(t, l, "ka1", "ens33", vip001) {
		t.Errorf("ka1 %s; it must stay BACKUP without the VIP", ka1.state("VI_1"))
	}
}

// TestRoutesAndRules: virtual_routes and virtual_rules are installed with
// mastership and removed by SIGTERM.
func TestRoutesAndRules(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka1 := startTandem(t, l, "ka1", writeConf(t, "rr.conf", vrrpConf(2, 100, "1", `    virtual_routes {
        10.77.0.0/16 via 192.168.1.8 dev ens33
        blackhole 10.78.0.0/16
    }
    virtual_rules {
        from 10.79.0.0/16 table 100 priority 1000
    }`)))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	present := func() (routes, rules int) {
		if err := l.Do("ka1", func() error {
			rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.Dst != nil && (r.Dst.String() == "10.77.0.0/16" || r.Dst.String() == "10.78.0.0/16") {
					routes++
				}
			}
			ru, err := netlink.RuleList(netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, r := range ru {
				if r.Src != nil && r.Src.String() == "10.79.0.0/16" && r.Table == 100 && r.Priority == 1000 {
					rules++
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return routes, rules
	}
	waitFor(t, "routes and rule installed", 3*time.Second, func() bool { r, u := present(); return r == 2 && u == 1 })
	if err := ka1.proc.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r, u := present(); r != 0 || u != 0 {
		t.Errorf("after SIGTERM %d routes and %d rules remain", r, u)
	}
}

// TestBadPacketsCounted: adverts with a wrong TTL, password, checksum or
// version, sent from the client, are dropped and counted by reason, and
// never move the backup.
func TestBadPacketsCounted(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka2 := startTandem(t, l, "ka2", seedConf(t, "seed001-vip-ka2.conf"))
	ka1 := startTandem(t, l, "ka1", seedConf(t, "seed001-vip-ka1.conf"))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })

	src := netip.MustParseAddr("192.168.1.50")
	group := netip.MustParseAddr("224.100.100.100")
	good := vrrp.Packet{Version: 2, Type: vrrp.TypeAdvertisement, VRID: 88, Priority: 254, AuthType: vrrp.AuthSimple,
		AdvertInt: time.Second, Addrs: []netip.Addr{vip001}}
	copy(good.AuthData[:], "123456")
	build := func(p vrrp.Packet, ttl uint8) []byte {
		b, err := p.MarshalIPv4(vrrp.IPv4Header{Src: src, Dst: group, ID: 1, TTL: ttl}, nil, vrrp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrongPass := good
	copy(wrongPass.AuthData[:], "nope\x00\x00\x00\x00")
	wrongInterval := good
	wrongInterval.AdvertInt = 2 * time.Second
	badSum := build(good, 255)
	badSum[20+2] ^= 0x01 // the priority byte, under the VRRP checksum
	cases := map[string][]byte{
		"ttl":      build(good, 64),
		"auth":     build(wrongPass, 255),
		"interval": build(wrongInterval, 255),
		"checksum": badSum,
	}
	if err := l.Do("client", func() error {
		c, err := netio.Listen(netio.ConnConfig{Interface: "ens33", Group: group})
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < 3; i++ {
			for _, b := range cases {
				if err := c.SendTo(group, b); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drops counted", 3*time.Second, func() bool {
		d := ka2.instance(t, "VI_1").Dropped
		for reason := range cases {
			if d[reason] < 3 {
				return false
			}
		}
		return true
	})
	if ka2.state("VI_1") != "BACKUP" || ka1.state("VI_1") != "MASTER" {
		t.Errorf("bad packets moved the routers: ka1 %s, ka2 %s", ka1.state("VI_1"), ka2.state("VI_1"))
	}
}

// TestKeepalivedDumps: SIGUSR1, SIGUSR2 and SIGRTMIN+2 write keepalived's
// keepalived.data, keepalived.stats and keepalived.json, for tooling that
// reads them.
func TestKeepalivedDumps(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	dir := t.TempDir()
	ka1 := startTandem(t, l, "ka1", seedConf(t, "seed001-vip-ka1.conf"), "--dump-dir", dir)
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
	for _, c := range []struct {
		sig  syscall.Signal
		file string
		want string
	}{
		{syscall.SIGUSR1, "keepalived.data", "VI_1      MASTER"},
		{syscall.SIGUSR2, "keepalived.stats", "VRRP Instance: VI_1"},
		{syscall.Signal(34 + 2), "keepalived.json", `"name": "VI_1"`},
	} {
		if err := ka1.proc.Signal(c.sig); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, c.file)
		waitFor(t, c.file, 5*time.Second, func() bool {
			b, err := os.ReadFile(path)
			return err == nil && strings.Contains(string(b), c.want)
		})
	}
}
