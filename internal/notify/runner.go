// Package notify tells the world outside Tandem about state changes: the
// notify scripts of VRRP instances, sync groups, real servers and virtual
// servers, SMTP alerts, and an in-memory log of recent events for the
// status API.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"tandem/internal/config"
	"tandem/internal/script"
)

// State is a VRRP instance or sync group state, spelled as notify scripts
// receive it (keepalived vrrp_notify.c notify_script_exec).
type State string

// The states notify scripts are run for.
const (
	Master  State = "MASTER"
	Backup  State = "BACKUP"
	Fault   State = "FAULT"
	Stop    State = "STOP"
	Deleted State = "DELETED"
)

// DefaultScriptTimeout bounds a notify script's run. keepalived does not
// wait for notify scripts at all (vrrp_notify.c notify_exec); Tandem runs an
// object's scripts one after another so they arrive in order, and must
// bound each so that one hung script cannot hold back the rest.
const DefaultScriptTimeout = 30 * time.Second

// stopTimeout is how long keepalived lets a script run at shutdown before
// killing it (vrrp_notify.c: notify_stop via system_call_script with a
// TIMER_HZ timeout and child_killed_thread).
const stopTimeout = time.Second

// Scripts runs notify scripts through package script, as the default
// script user (notify scripts have no user of their own here), one at a
// time per object (instance, group, real server, virtual server)
// so that each object's notifications are delivered in order, while
// different objects' scripts run concurrently. The methods only queue; they
// never block.
type Scripts struct {
	users   *script.Users
	timeout time.Duration
	log     *slog.Logger
	// ctx ends when Close gives up waiting; it kills running scripts.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	queues  map[string][]job // pending jobs per object; a key exists while its worker runs
	refused map[string]bool  // scripts already reported as refused
	closed  bool
}

// job is one script run.
type job struct {
	argv    []string
	extra   []string
	timeout time.Duration
}

// NewScripts returns a script runner for the scripts configured under g
// (script_user, enable_script_security). The script user is looked up when
// the first script runs. A timeout of 0 means DefaultScriptTimeout.
func NewScripts(g *config.Global, timeout time.Duration, log *slog.Logger) *Scripts {
	if timeout <= 0 {
		timeout = DefaultScriptTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Scripts{
		users:   script.NewUsers(g, log),
		timeout: timeout,
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		queues:  make(map[string][]job),
		refused: make(map[string]bool),
	}
}

// Instance runs the scripts for instance in entering state st with
// effective priority prio: first the state's own script (notify_master,
// notify_backup, notify_fault, notify_stop, notify_deleted) with its
// configured arguments only, then the generic notify script with
// "INSTANCE", the name, the state and the priority appended (vrrp_notify.c
// send_instance_notifies). Without notify_deleted, DELETED is reported as
// FAULT, as keepalived does for backward compatibility.
func (s *Scripts) Instance(in *config.Instance, st State, prio int) {
	n := &in.Notify
	if st == Deleted && len(n.Deleted) == 0 {
		st = Fault
	}
	s.stateScripts("instance "+in.Name, n, st, "INSTANCE", in.Name, prio)
}

// Group runs the scripts for sync group sg entering state st, as Instance
// does, with "GROUP" and a priority of 0 passed to the generic script
// (vrrp_notify.c send_group_notifies). Groups have no notify_deleted.
func (s *Scripts) Group(sg *config.SyncGroup, st State) {
	s.stateScripts("group "+sg.Name, &sg.Notify, st, "GROUP", sg.Name, 0)
}

func (s *Scripts) stateScripts(key string, n *config.Notify, st State, typ, name string, prio int) {
	timeout := s.timeout
	if st == Stop {
		timeout = min(timeout, stopTimeout)
	}
	own := map[State][]string{Master: n.Master, Backup: n.Backup, Fault: n.Fault, Stop: n.Stop, Deleted: n.Deleted}[st]
	if typ == "GROUP" && st == Deleted {
		own = nil
	}
	var jobs []job
	if len(own) > 0 {
		jobs = append(jobs, job{argv: own, timeout: timeout})
	}
	if len(n.Any) > 0 {
		jobs = append(jobs, job{argv: n.Any, extra: []string{typ, name, string(st), strconv.Itoa(prio)}, timeout: timeout})
	}
	s.enqueue(key, jobs...)
}

// MasterRxLowerPri runs instance's notify_master_rx_lower_pri script, which
// keepalived runs, without extra arguments, when a master hears an
// advertisement of lower priority (vrrp_notify.c send_event_notify).
func (s *Scripts) MasterRxLowerPri(in *config.Instance) {
	if len(in.Notify.MasterRxLowPri) > 0 {
		s.enqueue("instance "+in.Name, job{argv: in.Notify.MasterRxLowPri, timeout: s.timeout})
	}
}

// RealServer runs rs's notify_up or notify_down script; keepalived passes
// them no extra arguments (ipwrapper.c do_rs_notifies).
func (s *Scripts) RealServer(vs *config.VirtualServer, rs *config.RealServer, up bool) {
	argv := rs.NotifyDown
	if up {
		argv = rs.NotifyUp
	}
	if len(argv) > 0 {
		s.enqueue("real server "+RealServerName(vs, rs)+" of "+VirtualServerName(vs), job{argv: argv, timeout: s.timeout})
	}
}

// VirtualServer runs vs's quorum_up or quorum_down script, without extra
// arguments (ipwrapper.c do_vs_notifies).
func (s *Scripts) VirtualServer(vs *config.VirtualServer, quorumUp bool) {
	argv := vs.QuorumDown
	if quorumUp {
		argv = vs.QuorumUp
	}
	if len(argv) > 0 {
		s.enqueue("virtual server "+VirtualServerName(vs), job{argv: argv, timeout: s.timeout})
	}
}

func (s *Scripts) enqueue(key string, jobs ...job) {
	if len(jobs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.log.Warn("notify scripts closed; not running", "object", key, "script", jobs[0].argv[0])
		return
	}
	q, running := s.queues[key]
	s.queues[key] = append(q, jobs...)
	if !running {
		s.wg.Add(1)
		go s.work(key)
	}
}

// work runs key's jobs in order until its queue is empty.
func (s *Scripts) work(key string) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		q := s.queues[key]
		if len(q) == 0 {
			delete(s.queues, key)
			s.mu.Unlock()
			return
		}
		j := q[0]
		s.queues[key] = q[1:]
		s.mu.Unlock()
		s.run(key, j)
	}
}

func (s *Scripts) run(key string, j job) {
	log := s.log.With("object", key, "script", j.argv[0])
	c, err := s.users.Command(j.argv, "", "")
	warning := ""
	if err == nil {
		warning, err = c.Check()
	}
	if err != nil {
		// keepalived drops such scripts at start (notify.c
		// check_notify_script_secure, and a default user it cannot set);
		// say so once per script.
		s.mu.Lock()
		first := !s.refused[j.argv[0]]
		s.refused[j.argv[0]] = true
		s.mu.Unlock()
		if first {
			log.Error("refusing to run notify script", "err", err)
		}
		return
	}
	if warning != "" {
		log.Warn(warning)
	}
	res, err := c.Run(s.ctx, j.timeout, j.extra...)
	switch {
	case errors.Is(err, context.Canceled):
		log.Warn("notify script killed at shutdown")
	case err != nil:
		log.Error("notify script did not start", "err", err)
	case res.TimedOut:
		log.Warn("notify script timed out", "timeout", j.timeout)
	case res.ExitCode != 0:
		log.Info("notify script failed", "status", res.ExitCode)
	default:
		log.Debug("notify script done")
	}
}

// Close stops accepting work and waits for queued scripts to finish. If ctx
// ends first, running scripts are killed, the rest are dropped, and Close
// returns ctx's error once every worker has stopped.
func (s *Scripts) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	defer s.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for k := range s.queues {
		s.queues[k] = nil
	}
	s.mu.Unlock()
	s.cancel()
	<-done
	return ctx.Err()
}
