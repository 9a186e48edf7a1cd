package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// advert is an advertisement interval and the VRRP version that goes with it.
type advert struct {
	interval time.Duration
	version  int
	text     string // as keepalived.conf writes it
}

type stopKind int

const (
	crash   stopKind = iota // SIGKILL of the master's process group
	sigterm                 // SIGTERM: the master advertises priority 0 and leaves
	// lost: the master's switch port cut and its process group killed at
	// the same moment (lab.Crash), as a machine dies: its kernel, which
	// keeps the VIP after a crash, forwards nothing more.
	lost
)

func (s stopKind) String() string { return [...]string{"crash", "sigterm", "lost"}[s] }

type benchCase struct {
	stop   stopKind
	advert advert
	// bfd: Tandem's routers also run a BFD session to each other
	// (bfdConfig) and its backup fast_failover_bfd over it. keepalived
	// has no BFD-driven takeover: it runs the plain configuration.
	bfd bool
}

var (
	advert1   = advert{time.Second, 2, "1"}
	advert01  = advert{100 * time.Millisecond, 3, "0.1"}
	advert001 = advert{10 * time.Millisecond, 3, "0.01"}
)

var cases = func() []benchCase {
	var cs []benchCase
	for _, a := range []advert{advert1, advert01} {
		for _, s := range []stopKind{crash, sigterm} {
			cs = append(cs, benchCase{stop: s, advert: a})
		}
	}
	return append(cs, benchCase{stop: lost, advert: advert001}, benchCase{stop: lost, advert: advert001, bfd: true})
}()

func (c benchCase) String() string {
	s := fmt.Sprintf("%s advert %s (v%d)", c.stop, c.advert.text, c.advert.version)
	if c.bfd {
		s += fmt.Sprintf(" tandem bfd %v x %d", bfdInterval, bfdMultiplier)
	}
	return s
}

// crashBound is the most a crash failover may take: the backup's
// Master_Down_Interval, 3 × advert_int + Skew_Time (RFC 3768 §6.1 and RFC
// 5798 §6.1, priority 90), plus 20 ms for the gratuitous ARP to reach the
// client and the probe's 10 ms resolution. The interval is 3 × advert_int
// at most because the master's last advert left before the kill.
func (c benchCase) crashBound() time.Duration {
	skew := 166 * time.Second / 256 // (256-90)/256 s
	if c.advert.version == 3 {
		skew = 166 * c.advert.interval / 256
	}
	return 3*c.advert.interval + skew + 20*time.Millisecond
}

// series is one implementation's results for one case.
type series struct {
	samples []time.Duration
	failed  int // runs that did not complete
	// notBFD counts the runs of a BFD case where the backup took over
	// for another reason than the BFD session going down (its
	// Master_Down_Timer ran out first, or the session was already down
	// when the master was lost: a false detection under load).
	notBFD int
}

// add records a run that took d; with bfd, why is the backup's reason for
// taking over, which fast_failover_bfd gives as "bfd NAME down: ...".
func (s *series) add(d time.Duration, bfd bool, why string) {
	s.samples = append(s.samples, d)
	if bfd && !strings.HasPrefix(why, "bfd ") {
		s.notBFD++
	}
}

func (s series) median() time.Duration {
	x := slices.Sorted(slices.Values(s.samples))
	switch n := len(x); {
	case n == 0:
		return 0
	case n%2 == 1:
		return x[n/2]
	default:
		return (x[n/2-1] + x[n/2]) / 2
	}
}

// min and max are 0 when there are no samples, as median is.
func (s series) min() time.Duration {
	if len(s.samples) == 0 {
		return 0
	}
	return slices.Min(s.samples)
}

func (s series) max() time.Duration {
	if len(s.samples) == 0 {
		return 0
	}
	return slices.Max(s.samples)
}

type caseResult struct {
	benchCase
	phases []time.Duration // of each run, from an advert to the stop
	series [2]series       // tandem, keepalived: the order of implementations
}

// ratio is Tandem's median over keepalived's (0 when either has none).
func (r caseResult) ratio() float64 {
	t, k := r.series[0].median(), r.series[1].median()
	if t == 0 || k == 0 {
		return 0
	}
	return float64(t) / float64(k)
}

// pass reports whether every Tandem run of a crash or lost case failed
// over within crashBound; ok is false for sigterm cases, which have no
// bound.
func (r caseResult) pass() (pass, ok bool) {
	if r.stop == sigterm {
		return false, false
	}
	t := r.series[0]
	return t.failed == 0 && len(t.samples) > 0 && t.max() <= r.crashBound(), true
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func printTable(w io.Writer, results []caseResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\ttandem median\tmin\tmax\tkeepalived median\tmin\tmax\ttandem/keepalived\tcrash bound\ttandem")
	for _, r := range results {
		fmt.Fprintf(tw, "%s", r.benchCase)
		for _, s := range r.series {
			med := ms(s.median())
			if s.failed > 0 {
				med += fmt.Sprintf(" (%d failed)", s.failed)
			}
			if s.notBFD > 0 {
				med += fmt.Sprintf(" (%d not by BFD)", s.notBFD)
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", med, ms(s.min()), ms(s.max()))
		}
		fmt.Fprintf(tw, "\t%.2f", r.ratio())
		if pass, ok := r.pass(); ok {
			fmt.Fprintf(tw, "\t%s\t%s\n", ms(r.crashBound()), verdict(pass))
		} else {
			fmt.Fprintf(tw, "\t-\t-\n")
		}
	}
	tw.Flush()
}

// The JSON document; durations in milliseconds.
type (
	jsonDoc struct {
		Runs   int         `json:"runs"`
		Cases  []jsonCase  `json:"cases"`
		Stress *jsonStress `json:"stress,omitempty"`
		// Handovers are the planned handover rows.
		Handovers []handoverResult `json:"handovers,omitempty"`
	}
	// jsonStress is the false-failover case: transitions of each
	// implementation's two routers during the run.
	jsonStress struct {
		Case         string  `json:"case"`
		DurationS    float64 `json:"duration_s"`
		AdvertIntMS  float64 `json:"advert_int_ms"`
		RTPriority   int     `json:"vrrp_rt_priority"`
		RLimitRTTime int     `json:"vrrp_rlimit_rttime"`
		NoSwap       bool    `json:"vrrp_no_swap"`
		// BFD: the routers ran a BFD session at 5 ms x 3 too, with the
		// same bfd_ scheduling.
		BFD        bool            `json:"bfd"`
		StressArgs string          `json:"stress_args"`
		Tandem     jsonTransitions `json:"tandem"`
		Keepalived jsonTransitions `json:"keepalived"`
		TandemPass bool            `json:"tandem_pass"`
		// Probe is what a thread at the daemons' priority saw of the
		// machine's scheduling during the load (probe.go).
		Probe probeResult `json:"probe"`
	}
	jsonTransitions struct {
		Transitions int    `json:"transitions"`
		IntoMaster  int    `json:"into_master"`
		BFDFlaps    int    `json:"bfd_flaps"` // the session's Up to Down changes, both routers
		Error       string `json:"error,omitempty"`
	}
	jsonCase struct {
		Case        string     `json:"case"`
		Stop        string     `json:"stop"`
		AdvertIntMS float64    `json:"advert_int_ms"`
		Version     int        `json:"version"`
		PhasesMS    []float64  `json:"phases_ms"`
		Tandem      jsonSeries `json:"tandem"`
		Keepalived  jsonSeries `json:"keepalived"`
		Ratio       float64    `json:"ratio"`
		BFD         bool       `json:"tandem_bfd"`
		// Only crash and lost cases have a bound.
		CrashBoundMS *float64 `json:"crash_bound_ms,omitempty"`
		TandemPass   *bool    `json:"tandem_pass,omitempty"`
	}
	jsonSeries struct {
		SamplesMS []float64 `json:"samples_ms"`
		Failed    int       `json:"failed"`
		NotBFD    int       `json:"not_by_bfd"`
		MedianMS  float64   `json:"median_ms"`
		MinMS     float64   `json:"min_ms"`
		MaxMS     float64   `json:"max_ms"`
	}
)

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printJSON(w io.Writer, runs int, results []caseResult, handovers []handoverResult, sc stressCase, stress []stressResult, probed probeResult) error {
	doc := jsonDoc{Runs: runs, Cases: []jsonCase{}, Handovers: handovers}
	if len(stress) == 2 {
		jt := func(r stressResult) jsonTransitions {
			j := jsonTransitions{Transitions: r.all, IntoMaster: r.toMaster, BFDFlaps: r.bfdDown}
			if r.err != nil {
				j.Error = r.err.Error()
			}
			return j
		}
		doc.Stress = &jsonStress{Case: sc.String(), DurationS: sc.duration.Seconds(), AdvertIntMS: msf(stressAdvert.interval),
			RTPriority: sc.sched.rtPriority, RLimitRTTime: sc.sched.rlimitRTTime, NoSwap: sc.sched.noSwap, BFD: sc.sched.bfd, StressArgs: strings.Join(sc.stressArgs, " "), Tandem: jt(stress[0]), Keepalived: jt(stress[1]), TandemPass: stressPass(stress), Probe: probed}
	}
	for _, r := range results {
		js := func(s series) jsonSeries {
			j := jsonSeries{SamplesMS: []float64{}, Failed: s.failed, NotBFD: s.notBFD, MedianMS: msf(s.median()), MinMS: msf(s.min()), MaxMS: msf(s.max())}
			for _, d := range s.samples {
				j.SamplesMS = append(j.SamplesMS, msf(d))
			}
			return j
		}
		jc := jsonCase{
			Case: r.String(), Stop: r.stop.String(), AdvertIntMS: msf(r.advert.interval), Version: r.advert.version, BFD: r.bfd,
			Tandem: js(r.series[0]), Keepalived: js(r.series[1]), Ratio: r.ratio(),
		}
		for _, p := range r.phases {
			jc.PhasesMS = append(jc.PhasesMS, msf(p))
		}
		if pass, ok := r.pass(); ok {
			b := msf(r.crashBound())
			jc.CrashBoundMS, jc.TandemPass = &b, &pass
		}
		doc.Cases = append(doc.Cases, jc)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
