package track

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"tandem/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDelta(t *testing.T) {
	ref := func(w int, rev bool) config.TrackRef { return config.TrackRef{Name: "x", Weight: w, Reverse: rev} }
	tests := []struct {
		name      string
		ref       config.TrackRef
		u         Update
		wantDelta int
		wantFault bool
	}{
		{"weight 0 ok", ref(0, false), Update{Kind: KindScript, OK: true}, 0, false},
		{"weight 0 failed is fault", ref(0, false), Update{Kind: KindScript}, 0, true},
		{"weight 0 reverse ok is fault", ref(0, true), Update{Kind: KindInterface, OK: true}, 0, true},
		{"weight 0 reverse failed", ref(0, true), Update{Kind: KindInterface}, 0, false},
		{"positive ok adds", ref(10, false), Update{Kind: KindScript, OK: true}, 10, false},
		{"positive failed adds nothing", ref(10, false), Update{Kind: KindScript}, 0, false},
		{"negative failed subtracts", ref(-10, false), Update{Kind: KindProcess}, -10, false},
		{"negative ok adds nothing", ref(-10, false), Update{Kind: KindProcess, OK: true}, 0, false},
		// track_bfd (vrrp_track.c initialise_track_bfd_state): as scripts.
		{"bfd weight 0 down is fault", ref(0, false), Update{Kind: KindBFD}, 0, true},
		{"bfd positive up adds", ref(20, false), Update{Kind: KindBFD, OK: true}, 20, false},
		{"bfd negative down subtracts", ref(-20, false), Update{Kind: KindBFD}, -20, false},
		{"positive reverse ok subtracts", ref(10, true), Update{Kind: KindScript, OK: true}, -10, false},
		{"negative reverse failed adds", ref(-10, true), Update{Kind: KindScript}, 10, false},
		{"file weight 0 zero", ref(0, false), Update{Kind: KindFile, Value: 0, OK: true}, 0, false},
		{"file weight 0 non-zero is fault", ref(0, false), Update{Kind: KindFile, Value: 3}, 0, true},
		{"file weight 0 reverse zero is fault", ref(0, true), Update{Kind: KindFile, Value: 0, OK: true}, 0, true},
		{"file weight 0 reverse non-zero", ref(0, true), Update{Kind: KindFile, Value: -1}, 0, false},
		{"file value times weight", ref(2, false), Update{Kind: KindFile, Value: 5}, 10, false},
		{"file negative value", ref(1, false), Update{Kind: KindFile, Value: -20}, -20, false},
		{"file reverse", ref(2, true), Update{Kind: KindFile, Value: 5}, -10, false},
		{"file capped at 253", ref(10, false), Update{Kind: KindFile, Value: 100}, 253, false},
		{"file -253 is not fault", ref(1, false), Update{Kind: KindFile, Value: -253}, -253, false},
		{"file -254 is fault", ref(1, false), Update{Kind: KindFile, Value: -254}, 0, true},
		{"file no overflow", ref(254, false), Update{Kind: KindFile, Value: -2147483648}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, f := Delta(tt.ref, tt.u)
			if d != tt.wantDelta || f != tt.wantFault {
				t.Errorf("Delta = (%d, %v), want (%d, %v)", d, f, tt.wantDelta, tt.wantFault)
			}
		})
	}
}

// step is one script run: its outcome and the status expected after it
// ("" = status unchanged, "ok"/"fail" = changed to).
type step struct {
	success bool
	change  string
}

func TestScriptState(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		initFail   bool
		steps      []step
	}{
		{"first success settles at once", 3, 3, false, []step{{true, "ok"}, {true, ""}}},
		{"first failure settles at once", 3, 3, false, []step{{false, "fail"}, {false, ""}}},
		{"fall failures to fail", 2, 3, false, []step{
			{true, "ok"}, {false, ""}, {false, ""}, {false, "fail"}, {false, ""},
		}},
		{"a success resets the fall count", 1, 2, false, []step{
			{true, "ok"}, {false, ""}, {true, ""}, {false, ""}, {false, "fail"},
		}},
		{"rise successes to recover", 3, 1, false, []step{
			{false, "fail"}, {true, ""}, {true, ""}, {true, "ok"},
		}},
		{"a failure resets the rise count", 2, 1, false, []step{
			{false, "fail"}, {true, ""}, {false, ""}, {true, ""}, {true, "ok"},
		}},
		{"init_fail needs rise successes", 2, 1, true, []step{
			{true, ""}, {true, "ok"}, {false, "fail"},
		}},
		{"init_fail failure is no change", 1, 1, true, []step{{false, ""}, {true, "ok"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewScriptState(tt.rise, tt.fall, tt.initFail)
			if s.Known() != tt.initFail || s.OK() {
				t.Fatalf("initial Known=%v OK=%v, want Known=%v OK=false", s.Known(), s.OK(), tt.initFail)
			}
			for i, st := range tt.steps {
				changed := s.Observe(st.success)
				got := ""
				if changed {
					got = map[bool]string{true: "ok", false: "fail"}[s.OK()]
				}
				if got != st.change {
					t.Fatalf("step %d (success=%v): change %q, want %q", i, st.success, got, st.change)
				}
				if !s.Known() {
					t.Fatalf("step %d: still unknown", i)
				}
			}
		})
	}
}

// Resize keeps the status and its known-ness, and the new rise and fall
// decide from there: an OK script needs the new fall failures to fail, a
// failed one the new rise successes to recover.
func TestScriptStateResize(t *testing.T) {
	tests := []struct {
		name       string
		before     []bool // results observed with rise 1, fall 1
		rise, fall int
		steps      []step
	}{
		{"OK stays OK, new fall", []bool{true}, 2, 3, []step{{false, ""}, {false, ""}, {false, "fail"}}},
		{"failed stays failed, new rise", []bool{false}, 3, 2, []step{{true, ""}, {true, ""}, {true, "ok"}}},
		{"fewer to fall", []bool{true}, 1, 1, []step{{true, ""}, {false, "fail"}}},
		{"unknown stays unknown, settles at once", nil, 3, 3, []step{{false, "fail"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewScriptState(1, 1, false)
			for _, ok := range tt.before {
				s.Observe(ok)
			}
			known, ok := s.Known(), s.OK()
			s.Resize(tt.rise, tt.fall)
			if s.Known() != known || s.OK() != ok {
				t.Fatalf("Resize: Known=%v OK=%v, want Known=%v OK=%v", s.Known(), s.OK(), known, ok)
			}
			for i, st := range tt.steps {
				got := ""
				if s.Observe(st.success) {
					got = map[bool]string{true: "ok", false: "fail"}[s.OK()]
				}
				if got != st.change {
					t.Fatalf("step %d (success=%v): change %q, want %q", i, st.success, got, st.change)
				}
			}
		})
	}
}

func TestProcessState(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type obs struct {
		ms, count int
		changed   bool
		up        bool
	}
	sec := func(s float64) config.Duration { return config.Duration(s * float64(time.Second)) }
	tests := []struct {
		name string
		cfg  config.TrackProcess
		obs  []obs
	}{
		{"no delay", config.TrackProcess{Quorum: 1}, []obs{
			{0, 0, true, false}, {100, 1, true, true}, {200, 3, false, true}, {300, 0, true, false},
		}},
		{"quorum_max", config.TrackProcess{Quorum: 2, QuorumMax: 3}, []obs{
			{0, 1, true, false}, {1, 2, true, true}, {2, 3, false, true}, {3, 4, true, false}, {4, 3, true, true},
		}},
		{"first count ignores delays", config.TrackProcess{Quorum: 1, Delay: sec(5)}, []obs{
			{0, 1, true, true},
		}},
		{"terminate_delay bridges a restart", config.TrackProcess{Quorum: 1, TerminateDelay: sec(2)}, []obs{
			{0, 1, true, true}, {1000, 0, false, true}, {2500, 1, false, true}, {5000, 1, false, true},
		}},
		{"terminate_delay expires", config.TrackProcess{Quorum: 1, TerminateDelay: sec(2)}, []obs{
			{0, 1, true, true}, {1000, 0, false, true}, {2999, 0, false, true}, {3000, 0, true, false},
		}},
		{"fork_delay", config.TrackProcess{Quorum: 1, ForkDelay: sec(1)}, []obs{
			{0, 0, true, false}, {100, 1, false, false}, {600, 0, false, false},
			{700, 1, false, false}, {1699, 1, false, false}, {1700, 1, true, true}, {1800, 0, true, false},
		}},
		{"delay sets both", config.TrackProcess{Quorum: 1, Delay: sec(1)}, []obs{
			{0, 0, true, false}, {0, 1, false, false}, {1000, 1, true, true},
			{1000, 0, false, true}, {2000, 0, true, false},
		}},
		{"specific delay wins over delay", config.TrackProcess{Quorum: 1, Delay: sec(1), ForkDelay: sec(3)}, []obs{
			{0, 0, true, false}, {0, 1, false, false}, {2000, 1, false, false}, {3000, 1, true, true},
			{3000, 0, false, true}, {4000, 0, true, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewProcessState(&tt.cfg)
			for i, o := range tt.obs {
				if got := s.Observe(at(o.ms), o.count); got != o.changed || s.Up() != o.up {
					t.Fatalf("obs %d (t=%dms count=%d): changed=%v up=%v, want changed=%v up=%v",
						i, o.ms, o.count, got, s.Up(), o.changed, o.up)
				}
				if pending := !s.Deadline().IsZero(); pending && !s.Deadline().After(at(o.ms)) {
					t.Fatalf("obs %d: deadline %v not after now", i, s.Deadline())
				}
			}
		})
	}
}

func TestParseFileValue(t *testing.T) {
	tests := []struct {
		in     string
		want   int
		wantOK bool
	}{
		{"", 0, true},
		{"5\n", 5, true},
		{"  -12 trailing", -12, true},
		{"+7", 7, true},
		{"0x1f", 31, true},
		{"0X1F", 31, true},
		{"010", 8, true},
		{"09", 0, true},
		{"0x", 0, true},
		{"abc", 0, true},
		{"2147483648", 2147483648, true},
		{"-2147483648", -2147483648, true},
		{"2147483649", 0, false},
		{"-2147483649", 0, false},
		{"99999999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseFileValue([]byte(tt.in))
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseFileValue(%q) = (%d, %v), want (%d, %v)", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestProcessMatcher(t *testing.T) {
	cl := func(args ...string) []byte {
		var b []byte
		for _, a := range args {
			b = append(append(b, a...), 0)
		}
		return b
	}
	tests := []struct {
		name    string
		cfg     config.TrackProcess
		comm    string
		cmdline []byte
		want    bool
	}{
		{"comm", config.TrackProcess{Process: "nginx"}, "nginx", nil, true},
		{"comm is exact", config.TrackProcess{Process: "ssh"}, "sshd", nil, false},
		{"full command argv0", config.TrackProcess{Process: "/usr/sbin/nginx", FullCommand: true}, "nginx", cl("/usr/sbin/nginx", "-g", "x"), true},
		{"full command other argv0", config.TrackProcess{Process: "/usr/sbin/nginx", FullCommand: true}, "nginx", cl("nginx"), false},
		{"exact params", config.TrackProcess{Process: "sleep", Params: []string{"10"}}, "sleep", cl("sleep", "10"), true},
		{"exact params, extra arg", config.TrackProcess{Process: "sleep", Params: []string{"10"}}, "sleep", cl("sleep", "10", "x"), false},
		{"exact params, longer arg", config.TrackProcess{Process: "sleep", Params: []string{"10"}}, "sleep", cl("sleep", "100"), false},
		{"partial, extra arg", config.TrackProcess{Process: "a", Params: []string{"x", "y"}, ParamMatch: config.ParamPartial}, "a", cl("a", "x", "y", "z"), true},
		{"partial, longer last arg", config.TrackProcess{Process: "a", Params: []string{"x", "y"}, ParamMatch: config.ParamPartial}, "a", cl("a", "x", "yy"), false},
		{"initial, longer last arg", config.TrackProcess{Process: "a", Params: []string{"x", "y"}, ParamMatch: config.ParamInitial}, "a", cl("a", "x", "yy"), true},
		{"initial, longer middle arg", config.TrackProcess{Process: "a", Params: []string{"x", "y"}, ParamMatch: config.ParamInitial}, "a", cl("a", "xx", "y"), false},
		{"initial, fewer args", config.TrackProcess{Process: "a", Params: []string{"x", "y"}, ParamMatch: config.ParamInitial}, "a", cl("a", "x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newProcessMatcher(&tt.cfg).matches(tt.comm, tt.cmdline); got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		comm  string
		state byte
		ok    bool
	}{
		{"12 (sleep) S 1 2 3", "sleep", 'S', true},
		{"13 (a) b) Z 1", "a) b", 'Z', true},
		{"14 (x", "", 0, false},
		{"15 (x)", "", 0, false},
	}
	for _, tt := range tests {
		comm, state, ok := parseStat(tt.in)
		if comm != tt.comm || state != tt.state || ok != tt.ok {
			t.Errorf("parseStat(%q) = (%q, %q, %v), want (%q, %q, %v)", tt.in, comm, state, ok, tt.comm, tt.state, tt.ok)
		}
	}
}

func TestInstanceInterfaces(t *testing.T) {
	tests := []struct {
		name string
		in   config.Instance
		want []config.TrackRef
	}{
		{"own interface added", config.Instance{Interface: "eth0", TrackInterfaces: []config.TrackRef{{Name: "eth1", Weight: 5}}},
			[]config.TrackRef{{Name: "eth1", Weight: 5}, {Name: "eth0"}}},
		{"dont_track_primary", config.Instance{Interface: "eth0", DontTrackPrimary: true}, nil},
		{"already tracked", config.Instance{Interface: "eth0", TrackInterfaces: []config.TrackRef{{Name: "eth0", Weight: -5}}},
			[]config.TrackRef{{Name: "eth0", Weight: -5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, InstanceInterfaces(&tt.in)); diff != "" {
				t.Errorf("InstanceInterfaces (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindScript: "vrrp_script", KindFile: "track_file", KindInterface: "track_interface", KindProcess: "vrrp_track_process", KindBFD: "bfd_instance", 0: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
