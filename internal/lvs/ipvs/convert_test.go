package ipvs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/google/go-cmp/cmp"

	"tandem/internal/lvs"
)

// These tests need no kernel: they run everywhere.

func TestConvertRoundTrip(t *testing.T) {
	d := mustDesired(t, testServices()...)
	for _, key := range d.Keys() {
		vs, _ := d.Lookup(key)
		want := vs.Service
		want.Method = lvs.MethodUnset // not a kernel attribute
		if diff := cmp.Diff(want, fromService(toService(vs.Service)), cmpOpts); diff != "" {
			t.Errorf("%v round trip (-want +got):\n%s", key, diff)
		}
		for _, dst := range vs.Dests {
			if diff := cmp.Diff(dst, fromDest(toDest(dst)), cmpOpts); diff != "" {
				t.Errorf("%v: real server round trip (-want +got):\n%s", key, diff)
			}
		}
	}
}

func TestSchedulerFlags(t *testing.T) {
	for _, tc := range []struct {
		sched lvs.Scheduler
		flags lvs.Flags
		want  ipvs.Flags
	}{
		{lvs.SourceHash, lvs.FlagSHFallback, ipvs.ServiceSchedulerOpt1},
		{lvs.SourceHash, lvs.FlagSHPort, ipvs.ServiceSchedulerOpt2},
		{lvs.MaglevHash, lvs.FlagMHFallback | lvs.FlagMHPort, ipvs.ServiceSchedulerOpt1 | ipvs.ServiceSchedulerOpt2},
		{lvs.RoundRobin, lvs.FlagOnePacket, ipvs.ServiceOnePacket},
	} {
		s := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 1}, Scheduler: tc.sched, Flags: tc.flags}
		if got := toService(s).Flags; got != tc.want {
			t.Errorf("%s %v: kernel flags %v, want %v", tc.sched, tc.flags, got, tc.want)
		}
	}
	// A persistent service must carry IP_VS_SVC_F_PERSISTENT: the kernel
	// decides persistence by the flag, not by the timeout.
	s := lvs.Service{ServiceKey: lvs.ServiceKey{Family: lvs.IPv4, FWMark: 1}, Scheduler: lvs.RoundRobin, PersistenceTimeout: 5}
	if toService(s).Flags&ipvs.ServicePersistent == 0 {
		t.Error("persistent service without the persistent flag")
	}
}

func TestStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "tandem", "ipvs-services")
	s, err := loadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := mustDesired(t, testServices()...).Keys()
	for _, k := range keys {
		if added, err := s.add(k); err != nil || !added {
			t.Fatalf("add %v: %v, %v", k, added, err)
		}
	}
	if added, err := s.add(keys[0]); err != nil || added {
		t.Errorf("adding %v again: %v, %v", keys[0], added, err)
	}
	if err := s.remove(keys[1]); err != nil {
		t.Fatal(err)
	}
	reloaded, err := loadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if reloaded.has(k) != (i != 1) {
			t.Errorf("after reload, has(%v) = %v", k, reloaded.has(k))
		}
	}
	if err := reloaded.retain(map[lvs.ServiceKey]bool{keys[2]: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := slices.DeleteFunc(strings.Split(string(b), "\n"), func(l string) bool { return l == "" || l[0] == '#' })
	if want := []string{keys[2].String()}; !slices.Equal(lines, want) {
		t.Errorf("after retain the file holds %q, want %q", lines, want)
	}

	for _, bad := range []string{"tcp/10.0.0.1", "icmp/10.0.0.1:80", "fwm:0/ipv4", "fwm:3/ipx"} {
		if err := os.WriteFile(path, []byte(bad+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadStateFile(path); err == nil {
			t.Errorf("state file %q loaded without error", bad)
		}
	}
}
