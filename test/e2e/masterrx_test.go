package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// TestMasterRxOptions: when ka1 (priority 100) preempts ka2 (90), ka2
// with higher_prio_send_advert sends one more advert of its own before it
// steps down, and ka1 with lower_prio_no_advert does not answer that
// lower priority advert with an extra one of its own (keepalived.conf(5)
// higher_prio_send_advert, lower_prio_no_advert): on the wire, after
// ka1's first advert there is exactly one advert at 90, and ka1's adverts
// keep their advert_int apart.
func TestMasterRxOptions(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed (apt-get install tshark); sudo test/run installs it")
	}
	l := lab.NewT(t, lab.Seed001().Spec())
	ka2 := startTandem(t, l, "ka2", writeConf(t, "ka2.conf", vrrpConf(2, 90, "1", "    higher_prio_send_advert")))
	waitFor(t, "ka2 MASTER alone", 10*time.Second, func() bool { return ka2.state("VI_1") == "MASTER" })
	wait, err := startCapture(l, "ka1", "ens33", 8*time.Second, "frame.time_epoch", "vrrp.prio")
	if err != nil {
		t.Fatal(err)
	}
	ka1 := startTandem(t, l, "ka1", writeConf(t, "ka1.conf", vrrpConf(2, 100, "1", "    lower_prio_no_advert")))
	waitFor(t, "ka1 MASTER, ka2 BACKUP", 10*time.Second, func() bool {
		return ka1.state("VI_1") == "MASTER" && ka2.state("VI_1") == "BACKUP"
	})
	lines, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	var first float64 // ka1's first advert
	var ka1At []float64
	after := 0 // ka2's adverts after it
	for _, ln := range lines {
		at, prio, ok := strings.Cut(ln, ",")
		sec, err := strconv.ParseFloat(at, 64)
		if !ok || err != nil {
			t.Fatalf("tshark line %q", ln)
		}
		switch prio {
		case "100":
			if first == 0 {
				first = sec
			}
			ka1At = append(ka1At, sec)
		case "90":
			if first != 0 {
				after++
			}
		}
	}
	if first == 0 {
		t.Fatalf("no advert of ka1 captured: %q", lines)
	}
	if after != 1 {
		t.Errorf("ka2 sent %d adverts after ka1's first, want 1 (higher_prio_send_advert): %q", after, lines)
	}
	for i := 1; i < len(ka1At); i++ {
		if gap := ka1At[i] - ka1At[i-1]; gap < 0.5 {
			t.Errorf("ka1 sent two adverts %.3f s apart: it answered a lower priority despite lower_prio_no_advert: %q", gap, lines)
		}
	}
}
