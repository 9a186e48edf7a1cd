package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sampleInterval is how often the latency sampler reads the status.
const sampleInterval = 500 * time.Millisecond

// latencyBuckets span a local TCP connect (well under a millisecond) to a
// checker's timeout (seconds).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// latencySampler feeds tandem_check_latency_seconds. The status keeps only
// each checker's last run, so the histogram is built by sampling: every
// sampleInterval it reads the status and observes the latency of each
// checker whose LastRun moved since the previous sample. A checker that
// runs more often than that has its runs in between missed; with delay_loop
// counted in seconds that does not happen in practice.
type latencySampler struct {
	src  Source
	hist *prometheus.HistogramVec
	seen map[checkerKey]time.Time // only sample touches it
	stop chan struct{}
	done chan struct{}
}

// checkerKey is one checker: its series' labels, and its position, since
// a real server may have two checkers of one type.
type checkerKey struct {
	series [4]string // virtual_server, protocol, real_server, checker
	i      int
}

func newLatencySampler(src Source) *latencySampler {
	return &latencySampler{
		src: src,
		hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_check_latency_seconds",
			Help:    "Health check latency, sampled from each checker's last run every 0.5 s (runs closer together than that are missed).",
			Buckets: latencyBuckets,
		}, []string{"virtual_server", "protocol", "real_server", "checker", "result"}),
		seen: map[checkerKey]time.Time{},
	}
}

// start samples every interval until close.
func (s *latencySampler) start(interval time.Duration) {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// close stops the sampling goroutine and waits for it.
func (s *latencySampler) close() {
	close(s.stop)
	<-s.done
}

// sample observes every checker that has run since the last sample, and
// forgets the series of checkers a reload removed.
func (s *latencySampler) sample() {
	now := map[checkerKey]time.Time{}
	live := map[[4]string]bool{}
	for _, vs := range s.src.Status().VirtualServers {
		for _, rs := range vs.RealServers {
			for i, c := range rs.Checkers {
				k := checkerKey{series: [4]string{vs.Name, vs.Protocol, rs.Address(), c.Type}, i: i}
				live[k.series] = true
				if c.LastRun.IsZero() {
					continue // not run yet
				}
				now[k] = c.LastRun
				if last, ok := s.seen[k]; ok && last.Equal(c.LastRun) {
					continue
				}
				l := k.series
				s.hist.WithLabelValues(l[0], l[1], l[2], l[3], c.LastResult).Observe(c.Latency)
			}
		}
	}
	for k := range s.seen {
		if l := k.series; !live[l] {
			s.hist.DeletePartialMatch(prometheus.Labels{"virtual_server": l[0], "protocol": l[1], "real_server": l[2], "checker": l[3]})
		}
	}
	s.seen = now
}
