package daemon

import (
	"context"
	"encoding/binary"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"tandem/internal/config"
	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/lvs/xdp"
)

// TestXDPPlaneTimeouts: on the XDP data plane (in a lab namespace, pinned
// on a BPF file system of the test's own, as --bpf-dir says), lvs_timeouts
// tcp is the flow timeout of a TCP service, set at start and changed in
// place by a reload that drops it (back to IPVS's 15 minutes); tcpfin,
// which has no counterpart, is warned about at its position, and nothing
// says the timeouts are ignored.
func TestXDPPlaneTimeouts(t *testing.T) {
	l := directorLab(t)
	root := lab.BPFFST(t)
	var k kernel
	err := l.Do("d", func() (err error) {
		k, _, _, err = openKernel(DataplaneXDP, slog.New(slog.DiscardHandler), xdp.WithPinRoot(root))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := lab.ParseConfig(t, `global_defs {
    lvs_timeouts tcp 7200 tcpfin 120 udp 60
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    lb_algo wrr
    lb_kind DR
    real_server 10.0.0.2 80 {
    }
}
`)
	var logs lab.LogBuffer
	b := &balancer{cfg: cfg, log: slog.New(slog.NewTextHandler(&logs, nil)), name: DataplaneXDP, kernel: k,
		rec: lvs.NewReconciler(k, func(lvs.ServiceKey) bool { return true }), pool: lvs.NewPool()}
	t.Cleanup(func() { l.Do("d", b.stopPlane) })
	if err := l.Do("d", func() error { b.startPlane(cfg, true); b.reconcile(context.Background()); return nil }); err != nil {
		t.Fatal(err)
	}
	if b.ops == 0 {
		t.Fatalf("no service programmed:\n%s", logs.String())
	}
	for want, n := range map[string]int{
		`msg="lvs_timeouts tcpfin: the xdp data plane does not follow TCP's state; a closed connection's flow keeps the tcp timeout" dataplane=xdp pos=t.conf:1:1`: 1,
		`ignored`: 0,
	} {
		if logs.Count(want) != n {
			t.Errorf("log has %q %d times, want %d:\n%s", want, logs.Count(want), n, logs.String())
		}
	}
	// The services map, read from its pin: struct svc_val's timeout (ns)
	// is at offset 16.
	dirs, err := filepath.Glob(filepath.Join(root, "xdp-*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("pin directories under %s: %v, %v; want one", root, dirs, err)
	}
	timeout := func() time.Duration {
		t.Helper()
		m, err := ebpf.LoadPinnedMap(filepath.Join(dirs[0], "services"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		var key, val []byte
		var out []time.Duration
		for it := m.Iterate(); it.Next(&key, &val); {
			out = append(out, time.Duration(binary.LittleEndian.Uint64(val[16:24])))
		}
		if len(out) != 1 {
			t.Fatalf("services map: %v, want one service", out)
		}
		return out[0]
	}
	if got := timeout(); got != 2*time.Hour {
		t.Errorf("flow timeout with lvs_timeouts tcp 7200: %v", got)
	}
	// A reload without lvs_timeouts.
	cfg.Global.LVSTimeouts = config.LVSTimeouts{}
	b.configurePlane(cfg)
	if got := timeout(); got != 15*time.Minute {
		t.Errorf("flow timeout after a reload without lvs_timeouts: %v, want IPVS's 15 minutes", got)
	}
}
