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
)

// Handler serves what operators look at over HTTP: /metrics (Prometheus),
// /status.json (the document of `tandem status --json`) and / (the status
// page). It runs a latency sampler until Close.
type Handler struct {
	src     Source
	log     *slog.Logger
	mux     *http.ServeMux
	sampler *latencySampler
}

// NewHandler starts the latency sampler and returns the handler; Close
// stops the sampler.
func NewHandler(src Source, log *slog.Logger) *Handler {
	h := &Handler{src: src, log: log, mux: http.NewServeMux(), sampler: newLatencySampler(src)}
	// A registry of our own, not the global one: tests build several
	// handlers, and nothing else in the binary registers metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(statusCollector{src}, h.sampler.hist,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	h.mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, src.Status(), log) })
	h.mux.HandleFunc("GET /{$}", h.page)
	h.sampler.start(sampleInterval)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close stops the latency sampler.
func (h *Handler) Close() { h.sampler.close() }

// HTTPServer is the optional HTTP listener.
type HTTPServer struct {
	h   *Handler
	srv *http.Server
}

// ListenHTTP listens on addr (host:port) and serves a Handler there,
// holding at most maxConns connections open.
func ListenHTTP(addr string, src Source, log *slog.Logger, maxConns int) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	h := NewHandler(src, log)
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
