package bfd

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkSilenceToDown measures, at 5 ms x 3 (15 ms detection time),
// how long after the neighbor falls silent (its link cut) the engine
// reports the session Down: the detection time plus the engine's own
// lateness on this machine. Each iteration waits for the session to come
// back Up first (about a second at idle_tx 1 s), which is not timed.
//
//	go test -run XXX -bench SilenceToDown -benchtime 20x ./internal/bfd
func BenchmarkSilenceToDown(b *testing.B) {
	l := pairLab(b)
	ea, eb := engineIn(b, l, "a"), engineIn(b, l, "b")
	wb := watch(eb)
	if err := ea.Apply([]Config{cfgTo("fast", "10.77.0.2", 5*time.Millisecond, 3)}); err != nil {
		b.Fatal(err)
	}
	if err := eb.Apply([]Config{cfgTo("fast", "10.77.0.1", 5*time.Millisecond, 3)}); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		wb.waitFor(b, "fast", Up, 30*time.Second)
		// Let the Poll of going Up finish so the 5 ms timers are in force.
		waitStatus(b, eb, "5 ms timers", func(s Status) bool { return s.State == Up && s.Detection == 15*time.Millisecond })
		b.StartTimer()
		cut := time.Now()
		if err := l.SetLink("a", "eth0", false); err != nil {
			b.Fatal(err)
		}
		ev := wb.waitFor(b, "fast", Down, 10*time.Second)
		lat = append(lat, ev.At.Sub(cut))
		b.StopTimer()
		if err := l.SetLink("a", "eth0", true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "median-ms-to-down")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms-to-down")
	b.ReportMetric(float64(15*time.Millisecond)/1e6, "detection-ms")
}
