// Package api serves the running daemon's status: over a unix socket for
// `tandem status`, as JSON, and over the optional HTTP listener (http.go)
// as metrics, the same JSON and a status page.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Status is the document `tandem status --json` prints.
type Status struct {
	Version   string    `json:"version"`
	Config    string    `json:"config"`
	Started   time.Time `json:"started"`
	Dataplane string    `json:"dataplane"`
	// DataplaneOps counts the operations sent to the data plane since
	// start (services and real servers added, changed, removed).
	DataplaneOps uint64           `json:"dataplane_ops"`
	Instances    []InstanceStatus `json:"instances"`
	// VirtualServers are the load-balanced services and their health.
	VirtualServers []VirtualServerStatus `json:"virtual_servers"`
	// Events are the most recent state changes, oldest first.
	Events []Event `json:"events"`
	// SyncDaemon is IPVS's connection-sync daemon (lvs_sync_daemon);
	// absent when not configured.
	SyncDaemon *SyncDaemonStatus `json:"sync_daemon,omitempty"`
	// Conntrackd is the conntrackd conntrack_sync runs; absent when not
	// configured.
	Conntrackd *ConntrackdStatus `json:"conntrackd,omitempty"`
	// BFD are the BFD sessions (bfd_instance), sorted by name; absent
	// when none is configured.
	BFD []BFDSessionStatus `json:"bfd_sessions,omitempty"`
	// BGP is the embedded BGP speaker (the bgp block); absent without
	// one.
	BGP *BGPStatus `json:"bgp,omitempty"`
}

// BGPStatus is the BGP speaker: its sessions and the VIPs it announces.
type BGPStatus struct {
	RouterID  string              `json:"router_id"`
	LocalAS   uint32              `json:"local_as"`
	Neighbors []BGPNeighborStatus `json:"neighbors"`
	// VIPs are the VIPs the bgp block announces when they can be served
	// here, each with whether its route is announced now.
	VIPs []BGPVIPStatus `json:"vips"`
	// ShuttingDown is set once the speaker takes this director out of
	// rotation as it stops (the routes carry GRACEFUL_SHUTDOWN, then go);
	// Drained while `tandem drain` keeps it out (until --undo).
	ShuttingDown bool `json:"shutting_down,omitempty"`
	Drained      bool `json:"drained,omitempty"`
}

// BGPNeighborStatus is one BGP session (RFC 4271).
type BGPNeighborStatus struct {
	Address  string `json:"address"`
	RemoteAS uint32 `json:"remote_as"`
	// State is the RFC 4271 FSM state: idle, connect, active, opensent,
	// openconfirm, established.
	State string `json:"state"`
	// Since is when the session was established (absent unless it is).
	Since time.Time `json:"since,omitzero"`
	// PrefixesSent and PrefixesReceived count the prefixes advertised to
	// the router and learned from it.
	PrefixesSent     uint64 `json:"prefixes_sent"`
	PrefixesReceived uint64 `json:"prefixes_received"`
	// LastError is the session's last failure (empty: none).
	LastError string `json:"last_error,omitempty"`
}

// BGPVIPStatus is one VIP the bgp block announces.
type BGPVIPStatus struct {
	VIP string `json:"vip"`
	// Announced: its host route is announced (the VIP has quorum and its
	// rules are in the data plane); false: withdrawn.
	Announced bool `json:"announced"`
}

// ConntrackdStatus is conntrackd's state (conntrack_sync): whether it
// runs, how often it was restarted, and the last command Tandem gave it
// on a transition of the instance or sync group it follows.
type ConntrackdStatus struct {
	Follows  string `json:"follows"`
	Running  bool   `json:"running"`
	Restarts int    `json:"restarts"`
	// Error says why conntrackd does not run (how it last died).
	Error string `json:"error,omitempty"`
	// Role is the role conntrackd was last switched to (MASTER, BACKUP,
	// FAULT); Command the last command given ("conntrackd -c"),
	// CommandError how it failed ("" if it did not), CommandTime when.
	Role         string    `json:"role"`
	Command      string    `json:"command,omitempty"`
	CommandError string    `json:"command_error,omitempty"`
	CommandTime  time.Time `json:"command_time,omitzero"`
}

// BFDSessionStatus is one BFD session (RFC 5880).
type BFDSessionStatus struct {
	Name     string `json:"name"`
	Neighbor string `json:"neighbor"`
	Source   string `json:"source,omitempty"`
	// State is AdminDown, Down, Init or Up (RFC 5880 section 4.1).
	State string `json:"state"`
	// LocalDiag and RemoteDiag are the RFC 5880 diagnostic codes.
	LocalDiag  uint8 `json:"local_diag"`
	RemoteDiag uint8 `json:"remote_diag"`
	// Detection is the detection time in force, TxInterval the
	// negotiated transmit interval (seconds).
	Detection  float64 `json:"detection_seconds"`
	TxInterval float64 `json:"tx_interval_seconds"`
	// Flaps counts the session's transitions out of Up.
	Flaps      uint64    `json:"flaps"`
	LastChange time.Time `json:"last_change,omitzero"`
	// LateDetections counts detection times that ran out late (a
	// stalled machine) and were extended by one interval.
	LateDetections uint64 `json:"late_detections"`
	// Sent, Received and Dropped count control packets (Dropped: failed
	// validation).
	Sent     uint64 `json:"packets_sent"`
	Received uint64 `json:"packets_received"`
	Dropped  uint64 `json:"packets_dropped"`
}

// SyncDaemonStatus is lvs_sync_daemon's settings and the kernel's sync
// daemons.
type SyncDaemonStatus struct {
	Interface string `json:"interface"`
	// Instance is the VRRP instance the daemons follow (empty: both run).
	Instance string `json:"instance,omitempty"`
	SyncID   int    `json:"sync_id"`
	// Running are the daemons the kernel runs: "master", "backup".
	Running []string `json:"running"`
	// Error says why a wanted daemon does not run (the data plane, or
	// the kernel's refusal).
	Error string `json:"error,omitempty"`
}

// Event is one recent state change (VRRP, health check).
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Object  string    `json:"object"`
	Message string    `json:"message"`
	Reason  string    `json:"reason,omitempty"`
}

// VirtualServerStatus is one virtual server.
type VirtualServerStatus struct {
	Name      string `json:"name"`
	VIP       string `json:"vip"`
	Port      int    `json:"port"`
	Protocol  string `json:"protocol"`
	Scheduler string `json:"scheduler"`
	Method    string `json:"method"`
	// Quorum is the quorum the health checks apply.
	Quorum      int                `json:"quorum"`
	QuorumOK    bool               `json:"quorum_ok"`
	SorryServer bool               `json:"sorry_server_in"`
	RealServers []RealServerStatus `json:"real_servers"`
}

// RealServerStatus is one real server and its checkers.
type RealServerStatus struct {
	IP       string          `json:"ip"`
	Port     int             `json:"port"`
	Weight   int             `json:"weight"`
	Healthy  bool            `json:"healthy"`
	Checkers []CheckerStatus `json:"checkers"`
}

// CheckerStatus is one health checker's last result.
type CheckerStatus struct {
	Type       string    `json:"type"`
	LastResult string    `json:"last_result"`
	LastError  string    `json:"last_error,omitempty"`
	LastChange time.Time `json:"last_change,omitzero"`
	// LastRun is when the checker last ran, Latency how long that took
	// (seconds); tandem_check_latency_seconds samples them.
	LastRun time.Time `json:"last_run,omitzero"`
	Latency float64   `json:"latency_seconds"`
}

// InstanceStatus is one VRRP instance.
type InstanceStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	VRID      int    `json:"vrid"`
	Interface string `json:"interface"`
	// VMAC is the use_vmac interface that carries the VIPs, if any.
	VMAC string `json:"vmac,omitempty"`
	// Priority is the configured priority; EffectivePriority includes the
	// tracked objects' weights.
	Priority          int       `json:"priority"`
	EffectivePriority int       `json:"effective_priority"`
	MasterIP          string    `json:"master_ip"`
	VIPs              []string  `json:"vips"`
	Since             time.Time `json:"since"`
	SyncGroup         string    `json:"sync_group,omitempty"`
	AdvertsSent       uint64    `json:"adverts_sent"`
	AdvertsReceived   uint64    `json:"adverts_received"`
	// Dropped counts received packets dropped, by reason.
	Dropped     map[string]uint64 `json:"dropped"`
	Transitions uint64            `json:"transitions"`
	// LateExpiries counts the Master_Down_Timer expiries that ran late
	// (a stalled machine) and waited one more advertisement interval.
	LateExpiries uint64 `json:"late_expiries"`
	// Reason is why the instance entered State, at Since ("advert
	// timeout from 10.0.0.11").
	Reason string   `json:"reason,omitempty"`
	Faults []string `json:"faults,omitempty"`
	// DrainingUntil is set while the instance, no longer master, keeps
	// its VIPs unannounced to forward what still reaches it (a planned
	// handover): when they go.
	DrainingUntil time.Time `json:"draining_until,omitzero"`
}

// Source gives the current status; the daemon implements it.
type Source interface {
	Status() Status
	// Table is the data plane's live table (services, real servers,
	// counters), read from the kernel.
	Table() (Table, error)
	// Reload re-reads the configuration and applies the difference; an
	// error means the configuration was refused and nothing changed.
	Reload() (ReloadResult, error)
	// Handover makes master instances hand their mastership over
	// (`tandem handover`); an error means nothing was done.
	Handover(HandoverRequest) (HandoverResult, error)
	// Drain takes this director out of the routers' rotation (`tandem
	// drain`) or puts it back (Undo); an error means nothing was done.
	Drain(DrainRequest) (DrainResult, error)
}

// DrainRequest is what `tandem drain` asks for.
type DrainRequest struct {
	// Undo puts the director back into rotation.
	Undo bool `json:"undo,omitempty"`
}

// DrainResult names the VIPs whose routes were withdrawn (a drain) or
// announced again (an undo).
type DrainResult struct {
	VIPs []string `json:"vips"`
}

// HandoverRequest is what `tandem handover` asks for.
type HandoverRequest struct {
	// Instances are the instances to hand over; none: every master.
	Instances []string `json:"instances,omitempty"`
	// To is the unicast peer to hand over to; empty: the best backup.
	To string `json:"to,omitempty"`
}

// HandoverResult names the instances that started handing over.
type HandoverResult struct {
	Instances []string `json:"instances"`
}

// ReloadResult says what a reload changed.
type ReloadResult struct {
	Kept []string `json:"kept"`
	// Updated took on changed settings in place, with no state transition.
	Updated   []string `json:"updated"`
	Started   []string `json:"started"`
	Stopped   []string `json:"stopped"`
	Restarted []string `json:"restarted"`
	// Errors are parts that could not be applied (an instance whose
	// interface is missing); the rest was.
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Table is the live load-balancing table, as `tandem lvs list` prints it.
type Table struct {
	Dataplane string         `json:"dataplane"`
	Services  []TableService `json:"services"`
}

// TableService is one virtual service in the kernel.
type TableService struct {
	Protocol  string `json:"protocol"` // TCP, UDP, SCTP or FWM
	Address   string `json:"address"`  // VIP:port, or the fwmark
	Scheduler string `json:"scheduler"`
	Flags     string `json:"flags,omitempty"`
	// Persistence is the persistence timeout in seconds (0: none).
	Persistence uint32      `json:"persistence"`
	Dests       []TableDest `json:"dests"`
}

// TableDest is one real server of a service in the kernel, with counters.
type TableDest struct {
	Address string `json:"address"`
	Forward string `json:"forward"` // Masq, Route, Tunnel (ipvsadm's names)
	Weight  int    `json:"weight"`
	// ActiveConn and InActConn are IPVS's counts; the nftables data plane
	// counts connections scheduled (NAT) and reports them as ActiveConn.
	ActiveConn uint64 `json:"active_conn"`
	InActConn  uint64 `json:"inact_conn"`
	Packets    uint64 `json:"packets"`
	Bytes      uint64 `json:"bytes"`
}

// Server serves a Source on a unix socket.
type Server struct {
	src  Source
	log  *slog.Logger
	srv  *http.Server
	path string
}

// Listen creates the socket at path (its directory is created; a stale
// socket from a crashed run is replaced) and serves GET /status.json,
// holding at most maxConns connections open.
func Listen(path string, src Source, log *slog.Logger, maxConns int) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	s := &Server{src: src, log: log, path: path}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status.json", s.status)
	mux.HandleFunc("GET /lvs.json", s.table)
	mux.HandleFunc("POST /reload", s.reload)
	mux.HandleFunc("POST /handover", jsonCall(s, "handover", src.Handover))
	mux.HandleFunc("POST /drain", jsonCall(s, "drain", src.Drain))
	s.srv = serve(ln, maxConns, mux, log, "status socket")
	return s, nil
}

// clearStaleSocket makes path free for a new socket: nothing is there, or
// a socket that nobody answers on (a crashed run's), which it removes.
// Anything else is refused and left alone: --socket names a path Tandem
// will own, and a mistyped path must not cost the file that is there.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("status socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("status socket %s: there is a %s there, not a socket; it is left alone: give --socket a path of its own", path, fileKind(fi.Mode()))
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("status socket %s: another tandem answers there (in another network namespace): give this one a --socket of its own", path)
	}
	// Only a refusal proves that nobody listens; a permission error, say,
	// proves nothing, and the socket may be a live one.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("status socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("status socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// fileKind names what a file mode is, for errors.
func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symbolic link"
	case fs.ModeNamedPipe:
		return "named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "device"
	}
	return "file of type " + m.Type().String()
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.src.Status(), s.log)
}

func (s *Server) table(w http.ResponseWriter, _ *http.Request) {
	t, err := s.src.Table()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, t, s.log)
}

func (s *Server) reload(w http.ResponseWriter, _ *http.Request) {
	res, err := s.src.Reload()
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, res, s.log)
}

// jsonCall serves a request whose body is a Req as JSON by fn: its Res
// as JSON, or its error as the reason of a 422.
func jsonCall[Req, Res any](s *Server, what string, fn func(Req) (Res, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "bad "+what+" request: "+err.Error(), http.StatusBadRequest)
			return
		}
		res, err := fn(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		writeJSON(w, res, s.log)
	}
}

func writeJSON(w http.ResponseWriter, v any, log *slog.Logger) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		log.Debug("status write", "err", err)
	}
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	os.Remove(s.path)
	return err
}

// Fetch asks the daemon behind the socket at path for its status.
func Fetch(ctx context.Context, path string) (Status, error) {
	var st Status
	return st, get(ctx, path, "/status.json", &st)
}

// FetchTable asks the daemon behind the socket at path for its live
// load-balancing table.
func FetchTable(ctx context.Context, path string) (Table, error) {
	var t Table
	return t, get(ctx, path, "/lvs.json", &t)
}

// Reload asks the daemon behind the socket at path to reload its
// configuration.
func Reload(ctx context.Context, socket string) (ReloadResult, error) {
	var r ReloadResult
	return r, call(ctx, socket, http.MethodPost, "/reload", &r)
}

// Handover asks the daemon behind socket to hand the instances of req
// over.
func Handover(ctx context.Context, socket string, req HandoverRequest) (HandoverResult, error) {
	return post[HandoverResult](ctx, socket, "/handover", req)
}

// post sends req as JSON to path on the daemon behind socket and decodes
// its answer.
func post[Res any](ctx context.Context, socket, path string, req any) (Res, error) {
	var r Res
	body, err := json.Marshal(req)
	if err != nil {
		return r, err
	}
	return r, callBody(ctx, socket, http.MethodPost, path, body, &r)
}

// Drain asks the daemon behind socket to take this director out of the
// routers' rotation, or to put it back (req.Undo); it returns once the
// routes are withdrawn (after graceful_shutdown_delay) or announced.
func Drain(ctx context.Context, socket string, req DrainRequest) (DrainResult, error) {
	return post[DrainResult](ctx, socket, "/drain", req)
}

// ReloadApplied waits until the daemon behind socket records a reload
// applied after sent (the "reload" event the daemon adds once every part
// has taken the new configuration) and returns that event's time, or
// gives up when ctx ends. It polls every 5 ms; the time it returns is the
// daemon's, so the polling does not blur it. The reload tests and
// bench/reload time SIGHUP to applied with it.
func ReloadApplied(ctx context.Context, socket string, sent time.Time) (time.Time, error) {
	for {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := Fetch(fctx, socket)
		cancel()
		if err == nil {
			for _, e := range st.Events {
				if e.Kind == "reload" && e.Time.After(sent) {
					return e.Time, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no reload applied after %s (last status error: %v): %w", sent.Format("15:04:05.000"), err, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, socket, path string, v any) error {
	return call(ctx, socket, http.MethodGet, path, v)
}

func call(ctx context.Context, socket, method, path string, v any) error {
	return callBody(ctx, socket, method, path, nil, v)
}

// callBody is call with a JSON request body (nil: none).
func callBody(ctx context.Context, socket, method, path string, body []byte, v any) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tandem"+path, rd)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("status socket %s: permission denied: run this as root or as a member of the socket's group (%s)", socket, socketGroup(socket))
	}
	if err != nil {
		return fmt.Errorf("no tandem daemon answers on %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s from %s: %s: %s", path, socket, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s from %s: %w", path, socket, err)
	}
	return nil
}

// socketGroup names the group that owns the socket at path, for the
// permission error; the number if the name cannot be found.
func socketGroup(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "unknown: " + err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "unknown"
	}
	gid := strconv.FormatUint(uint64(st.Gid), 10)
	if g, err := user.LookupGroupId(gid); err == nil {
		return g.Name
	}
	return "gid " + gid
}
