package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tandem/internal/clock"
)

// Handler serves what operators look at over HTTP: /metrics (Prometheus),
// /status.json (the document of `tandem status --json`) and / (the status
// page). It runs a latency sampler and the charts' history until Close.
type Handler struct {
	src     Source
	log     *slog.Logger
	mux     *http.ServeMux
	sampler *latencySampler
	hist    *history
}

// HandlerOptions tune a Handler; the zero value is the defaults.
type HandlerOptions struct {
	// HistoryInterval is how often the status page's charts sample
	// (DefaultHistoryInterval when zero; MinHistoryInterval at least).
	HistoryInterval time.Duration
	// Clock drives the charts' sampling (clock.Real when nil).
	Clock clock.Clock
}

// NewHandler starts the latency sampler and the charts' history and
// returns the handler; Close stops them.
func NewHandler(src Source, log *slog.Logger, opts HandlerOptions) (*Handler, error) {
	hist, err := newHistory(src, opts.Clock, opts.HistoryInterval)
	if err != nil {
		return nil, err
	}
	h := &Handler{src: src, log: log, mux: http.NewServeMux(), sampler: newLatencySampler(src), hist: hist}
	// A registry of our own, not the global one: tests build several
	// handlers, and nothing else in the binary registers metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(statusCollector{src}, h.sampler.hist,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	h.mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, src.Status(), log) })
	h.mux.HandleFunc("GET /{$}", h.page)
	h.sampler.start(sampleInterval)
	h.hist.start()
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close stops the latency sampler and the history.
func (h *Handler) Close() {
	h.sampler.close()
	h.hist.close()
}

// HTTPServer is the optional HTTP listener.
type HTTPServer struct {
	h   *Handler
	srv *http.Server
}

// ListenHTTP listens on addr (host:port) and serves a Handler there,
// holding at most maxConns connections open.
func ListenHTTP(addr string, src Source, log *slog.Logger, maxConns int, opts HandlerOptions) (*HTTPServer, error) {
	h, err := NewHandler(src, log, opts)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("http listener: %w", err)
	}
	return &HTTPServer{h: h, srv: serve(ln, maxConns, h, log, "http listener")}, nil
}

// Close stops serving, then the sampler.
func (s *HTTPServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.h.Close()
	return err
}
