package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"

	"tandem/internal/api"
	"tandem/internal/config"
	"tandem/internal/config/syntax"
	"tandem/internal/lvs/ipvs"
)

// syncKernel is what syncFollower needs of ipvs.Syncer (faked in tests).
type syncKernel interface {
	Start(ipvs.SyncDaemon) error
	Stop(ipvs.SyncState) error
	Daemons() ([]ipvs.SyncDaemon, error)
	Close() error
}

// syncOrder is the order daemons are started and stopped in.
var syncOrder = []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup}

// syncFollower runs IPVS's connection-sync daemons as lvs_sync_daemon
// says (keepalived.conf(5), global_defs): with an instance, the master
// daemon while the instance is MASTER and the backup daemon in every other
// state (INIT, BACKUP, FAULT), as keepalived's ipvs_syncd_master and
// ipvs_syncd_backup switch them; without one, both for as long as Tandem
// runs. It follows every instance's state from the start, so that a
// reload naming another instance knows that one's state at once. Only
// kernel IPVS has sync daemons: with another data plane none is started,
// and the status says why.
type syncFollower struct {
	log       *slog.Logger
	dataplane string
	open      func() (syncKernel, error)

	mu      sync.Mutex
	cfg     *config.LVSSyncDaemon
	k       syncKernel // opened when first configured; nil while off
	off     string     // why no daemon runs although one is configured
	masters map[string]bool
	// running are the daemons this process started and has not stopped.
	running map[ipvs.SyncState]ipvs.SyncDaemon
	err     error // of the last apply, for the status
}

func newSyncFollower(dataplane string, open func() (syncKernel, error), log *slog.Logger) *syncFollower {
	return &syncFollower{log: log, dataplane: dataplane, open: open, masters: map[string]bool{},
		running: map[ipvs.SyncState]ipvs.SyncDaemon{}}
}

// syncDataplaneOff says why data plane dp runs no sync daemon: only
// kernel IPVS has them. "" for ipvs and auto, which finds out at start.
func syncDataplaneOff(dp string) string {
	if dp == DataplaneNFT || dp == DataplaneXDP || dp == DataplaneNone {
		return fmt.Sprintf("the data plane is %s; the connection sync daemon is kernel IPVS's (--dataplane ipvs)", dp)
	}
	return ""
}

func syncOffMsg(c *config.LVSSyncDaemon, why string) string {
	return fmt.Sprintf("lvs_sync_daemon %s: not started: %s", c.Interface, why)
}

// CheckDataplane returns warnings about what cfg asks of data plane dp
// that dp does not do, for `tandem check --dataplane` (tandem run logs
// the same at start).
func CheckDataplane(cfg *config.Config, dp string) config.Diagnostics {
	var out config.Diagnostics
	if c := cfg.Global.LVSSyncDaemon; c != nil {
		if why := syncDataplaneOff(dp); why != "" {
			out = append(out, syntax.Diagnostic{Pos: c.Pos, Severity: syntax.Warning, Msg: syncOffMsg(c, why)})
		}
	}
	return append(out, planeLimits(cfg, dp)...)
}

// openSyncer is the real syncFollower.open: IPVS's generic netlink family
// in the daemon's network namespace.
func openSyncer() (syncKernel, error) { return ipvs.NewSyncer() }

// configure takes lvs_sync_daemon at start and at every reload (nil: not
// configured) and starts, stops or restarts the daemons whose settings
// changed; unchanged ones keep running. It returns a warning when a sync
// daemon is configured but the data plane has none, and an error only when
// --dataplane ipvs was asked for and IPVS cannot be opened.
func (f *syncFollower) configure(c *config.LVSSyncDaemon) (warning string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c != nil && f.k == nil && f.off == "" {
		if f.off = syncDataplaneOff(f.dataplane); f.off == "" {
			k, err := f.open()
			switch {
			case err == nil:
				f.k = k
				f.clearLeftovers()
			case f.dataplane == DataplaneAuto && errors.Is(err, ipvs.ErrUnavailable):
				f.off = "kernel IPVS is not available"
			default:
				return "", fmt.Errorf("lvs_sync_daemon: %w", err)
			}
		}
	}
	f.cfg = c
	if c != nil && f.off != "" {
		warning = fmt.Sprintf("%s: %s", c.Pos, syncOffMsg(c, f.off))
	}
	f.apply()
	return warning, nil
}

// clearLeftovers stops the daemons a previous run left behind (a crash),
// or that someone started by hand: the kernel runs one of each, and
// lvs_sync_daemon says which Tandem wants.
func (f *syncFollower) clearLeftovers() {
	ds, err := f.k.Daemons()
	if err != nil {
		f.log.Warn("sync daemons not listed", "err", err)
		return
	}
	for _, d := range ds {
		err := f.k.Stop(d.State)
		f.log.Info("stopped a sync daemon found running at start", "state", d.State.String(), "interface", d.Interface, "syncid", d.SyncID, "err", err)
	}
}

// setState records an instance's new state and, if it is the one
// lvs_sync_daemon follows, switches the daemons.
func (f *syncFollower) setState(instance string, master bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.masters[instance] = master
	if f.cfg != nil && f.cfg.Instance == instance {
		f.apply()
	}
}

// stop stops every daemon this process started, as a stopping director
// must (keepalived stops the one its instance's state wants), and closes
// the netlink socket.
func (f *syncFollower) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = nil
	f.apply()
	if f.k != nil {
		f.k.Close()
		f.k = nil
	}
}

// want are the daemons the configuration and the instance's state ask for.
func (f *syncFollower) want() map[ipvs.SyncState]ipvs.SyncDaemon {
	c := f.cfg
	if c == nil || f.k == nil {
		return nil
	}
	d := ipvs.SyncDaemon{Interface: c.Interface, SyncID: uint8(c.SyncID), MaxLen: uint16(c.MaxLen),
		Port: uint16(c.Port), TTL: uint8(c.TTL), Group: c.Group}
	out := map[ipvs.SyncState]ipvs.SyncDaemon{}
	for _, st := range syncOrder {
		if c.Instance == "" || (st == ipvs.SyncMaster) == f.masters[c.Instance] {
			d.State = st
			out[st] = d
		}
	}
	return out
}

// apply stops the running daemons that are not wanted or whose settings
// changed, then starts the wanted ones that do not run: on becoming
// master, the backup stops before the master starts, as in keepalived.
// A daemon the kernel refuses is retried at the next apply.
func (f *syncFollower) apply() {
	if f.k == nil {
		return
	}
	want := f.want()
	var errs []error
	for _, st := range syncOrder {
		cur, ok := f.running[st]
		if !ok || cur == want[st] {
			continue
		}
		// ESRCH: stopped by hand meanwhile, which is what was asked.
		if err := f.k.Stop(st); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
			continue
		}
		delete(f.running, st)
		f.log.Info("sync daemon stopped", "state", st.String(), "interface", cur.Interface)
	}
	for _, st := range syncOrder {
		d, ok := want[st]
		if _, running := f.running[st]; !ok || running {
			continue
		}
		if err := f.k.Start(d); err != nil {
			errs = append(errs, err)
			continue
		}
		f.running[st] = d
		f.log.Info("sync daemon started", "state", st.String(), "interface", d.Interface, "syncid", d.SyncID)
	}
	f.err = errors.Join(errs...)
	if f.err != nil {
		f.log.Error("sync daemon", "err", f.err)
	}
}

// status is the sync daemon's part of the status document: what the
// kernel runs, read now, and the last failure. Nil when not configured.
func (f *syncFollower) status() *api.SyncDaemonStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.cfg
	if c == nil {
		return nil
	}
	st := &api.SyncDaemonStatus{Interface: c.Interface, Instance: c.Instance, SyncID: c.SyncID, Running: []string{}, Error: f.off}
	if f.k == nil {
		return st
	}
	ds, err := f.k.Daemons()
	for _, d := range ds {
		st.Running = append(st.Running, d.State.String())
	}
	if err = errors.Join(f.err, err); err != nil {
		st.Error = err.Error()
	}
	return st
}
