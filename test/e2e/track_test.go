package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

var vip001b = netip.MustParseAddr("192.168.1.101")

// TestTrackScriptNotifyAndMail: a vrrp_script with weight 0 that starts
// failing puts the master in FAULT and the backup takes over; when it
// passes again the master returns. The generic notify script receives
// keepalived's arguments, and smtp_alert mails a real SMTP listener.
func TestTrackScriptNotifyAndMail(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil || exec.Command(python, "-c", "import smtpd").Run() != nil {
		t.Skip("python3 with the smtpd module is needed for the SMTP listener (Debian's python3 has it)")
	}
	l := lab.NewT(t, lab.Seed001().Spec())
	dir := t.TempDir()
	flag := filepath.Join(dir, "fail")
	check := writeScript(t, dir, "check.sh", fmt.Sprintf("#!/bin/sh\n[ ! -e %s ]\n", flag))
	args := filepath.Join(dir, "notify.args")
	notifyScript := writeScript(t, dir, "notify.sh", fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %s\n", args))

	smtp, err := l.Start("ka1", python, "-u", "-m", "smtpd", "-n", "-c", "DebuggingServer", "127.0.0.1:2525")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SMTP listener", 10*time.Second, func() bool {
		return l.Do("ka1", func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:2525", 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})

	conf := fmt.Sprintf(`global_defs {
    router_id ka1
    notification_email {
        ops@example.org
    }
    notification_email_from tandem@example.org
    smtp_server 127.0.0.1 2525
    vrrp_mcast_group4 224.100.100.100
}
vrrp_script chk {
    script "%s"
    interval 0.2
    fall 2
    rise 2
    weight 0
}
vrrp_instance VI_1 {
    state MASTER
    interface ens33
    virtual_router_id 88
    priority 100
    advert_int 1
    smtp_alert
    notify "%s"
    track_script {
        chk
    }
    virtual_ipaddress {
        192.168.1.100/24 dev ens33 label ens33:1
    }
}
`, check, notifyScript)
	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", conf))
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", vrrpConf(2, 90, "1", "")))
	waitFor(t, "ka1 MASTER", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })

	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka1 FAULT and ka2 MASTER after the script fails", 10*time.Second, func() bool {
		return ka1.state("VI_1") == "FAULT" && ka2.state("VI_1") == "MASTER"
	})
	if holds(t, l, "ka1", "ens33", vip001) {
		t.Error("a router in FAULT keeps the VIP")
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka1 MASTER again", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP" })

	want := []string{"INSTANCE VI_1 BACKUP 100", "INSTANCE VI_1 MASTER 100", "INSTANCE VI_1 FAULT 100", "INSTANCE VI_1 BACKUP 100", "INSTANCE VI_1 MASTER 100"}
	// Notify scripts run after the state change, in order: wait for all.
	waitFor(t, "the notify script's record", 5*time.Second, func() bool {
		b, _ := os.ReadFile(args)
		return strings.Count(string(b), "\n") >= len(want)
	})
	b, _ := os.ReadFile(args)
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("notify script calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	waitFor(t, "the alert mail", 10*time.Second, func() bool {
		return strings.Contains(smtp.Output(), "Subject: [ka1] VRRP Instance VI_1 - Entering FAULT state")
	})
	if out := smtp.Output(); !strings.Contains(out, "Subject: [ka1] VRRP Instance VI_1 - Entering MASTER state") || !strings.Contains(out, "ops@example.org") {
		t.Errorf("the SMTP listener did not get the expected alerts:\n%s", out)
	}
}

// TestTrackInterfaceFault runs seed001-options.conf unmodified: VI_1 tracks
// eth0 and eth1; taking eth1 down puts VI_1 (only) in FAULT, and bringing it
// back lets VI_1 recover.
func TestTrackInterfaceFault(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	ka1 := startTandem(t, l, "ka1", seedConf(t, "seed001-options.conf"))
	waitFor(t, "both instances MASTER", 10*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka1.state("VI_2") == "MASTER"
	})
	if err := l.SetLink("ka1", "eth1", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VI_1 FAULT", 5*time.Second, func() bool { return ka1.state("VI_1") == "FAULT" })
	if in := ka1.instance(t, "VI_1"); in.Reason != "track_interface eth1 down" {
		t.Errorf("VI_1's reason %q, want track_interface eth1 down", in.Reason)
	}
	if ka1.state("VI_2") != "MASTER" {
		t.Errorf("VI_2 (which does not track eth1) is %s", ka1.state("VI_2"))
	}
	if holds(t, l, "ka1", "ens33", vip001) || !holds(t, l, "ka1", "ens33", vip001b) {
		t.Error("VI_1's VIP must go, VI_2's stay")
	}
	if err := l.SetLink("ka1", "eth1", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VI_1 MASTER again", 10*time.Second, func() bool { return ka1.state("VI_1") == "MASTER" })
}

// TestSyncGroup: two instances in a sync group move together. VI_1 on ka1
// tracks eth1; when it goes down, both of ka1's instances go to FAULT and
// ka2 takes both VIPs; when it comes back, ka1 takes both back.
func TestSyncGroup(t *testing.T) {
	l := lab.NewT(t, lab.Seed001().Spec())
	conf := func(prio int, track string) string {
		return fmt.Sprintf(`global_defs {
    vrrp_mcast_group4 224.100.100.100
}
vrrp_sync_group G {
    group {
        VI_1
        VI_2
    }
}
vrrp_instance VI_1 {
    interface ens33
    virtual_router_id 88
    priority %[1]d
    advert_int 1
%[2]s
    virtual_ipaddress {
        192.168.1.100/24
    }
}
vrrp_instance VI_2 {
    interface ens33
    virtual_router_id 89
    priority %[1]d
    advert_int 1
    virtual_ipaddress {
        192.168.1.101/24
    }
}
`, prio, track)
	}
	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", conf(100, "    track_interface {\n        eth1\n    }")))
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", conf(90, "")))
	both := func(d *daemon, st string) bool { return d.state("VI_1") == st && d.state("VI_2") == st }
	waitFor(t, "ka1 MASTER of both", 15*time.Second, func() bool { return both(ka1, "MASTER") && both(ka2, "BACKUP") })
	if err := l.SetLink("ka1", "eth1", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka1 FAULT in both, ka2 MASTER of both", 10*time.Second, func() bool { return both(ka1, "FAULT") && both(ka2, "MASTER") })
	if !holds(t, l, "ka2", "ens33", vip001) || !holds(t, l, "ka2", "ens33", vip001b) {
		t.Error("ka2 must hold both VIPs")
	}
	if err := l.SetLink("ka1", "eth1", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ka1 MASTER of both again", 15*time.Second, func() bool { return both(ka1, "MASTER") && both(ka2, "BACKUP") })
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
