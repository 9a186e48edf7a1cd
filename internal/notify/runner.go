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

// The events of notify_priority_changes: an instance's effective priority
// changed while it stayed MASTER or BACKUP. keepalived writes them only to
// its notify FIFOs, never to notify scripts (vrrp_notify.c notify_fifo).
const (
	MasterPriority State = "MASTER_PRIORITY"
	BackupPriority State = "BACKUP_PRIORITY"
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

// MailTimeout bounds one alert mail, on top of smtp_connect_timeout's bound
// on each step (Mailer), so that a server that answers, slowly, every step
// cannot hold an object's later alerts back for long.
const MailTimeout = time.Minute

// Runner runs notifications in the background: notify scripts through
// package script, and SMTP alerts. Each object's (instance, group, real
// server, virtual server) scripts run one at a time, and so do its mails,
// so that each arrives in order; different objects, and an object's
// scripts and its mails, run concurrently, so that a slow SMTP server does
// not hold back a script. The methods only queue; they never block. The
// caller passes each notification the script users and the Mailer of the
// configuration it belongs to, so that a reload takes effect at the next
// notification; Close waits for the runs in progress.
type Runner struct {
	timeout time.Duration
	log     *slog.Logger
	// ctx ends when Close gives up waiting; it kills running scripts and
	// fails the mail being sent.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	queues  map[string][]job // pending jobs per queue; a key exists while its worker runs
	refused map[refusal]bool // scripts already reported as refused
	closed  bool
}

// job is one script run or mail.
type job struct {
	what string // for the log: the script or "alert mail"
	run  func(ctx context.Context)
}

// refusal is a script refused under one configuration's users.
type refusal struct {
	users  *script.Users
	script string
}

// NewRunner returns a Runner whose scripts run for at most timeout each
// (0: DefaultScriptTimeout) and whose mails for at most MailTimeout.
func NewRunner(timeout time.Duration, log *slog.Logger) *Runner {
	if timeout <= 0 {
		timeout = DefaultScriptTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{
		timeout: timeout,
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		queues:  make(map[string][]job),
		refused: make(map[refusal]bool),
	}
}

// Instance runs the scripts for instance in entering state st with
// effective priority prio, as users picks: first the state's own script
// (notify_master, notify_backup, notify_fault, notify_stop, notify_deleted)
// with its configured arguments only, then the generic notify script with
// "INSTANCE", the name, the state and the priority appended (vrrp_notify.c
// send_instance_notifies). Without notify_deleted, DELETED is reported as
// FAULT, as keepalived does for backward compatibility.
func (r *Runner) Instance(users *script.Users, in *config.Instance, st State, prio int) {
	n := &in.Notify
	if st == Deleted && len(n.Deleted) == 0 {
		st = Fault
	}
	r.stateScripts(users, "instance "+in.Name, n, st, "INSTANCE", in.Name, prio)
}

// Group runs the scripts for sync group sg entering state st, as Instance
// does, with "GROUP" and a priority of 0 passed to the generic script
// (vrrp_notify.c send_group_notifies). Groups have no notify_deleted.
func (r *Runner) Group(users *script.Users, sg *config.SyncGroup, st State) {
	r.stateScripts(users, "group "+sg.Name, &sg.Notify, st, "GROUP", sg.Name, 0)
}

func (r *Runner) stateScripts(users *script.Users, key string, n *config.Notify, st State, typ, name string, prio int) {
	timeout := r.timeout
	if st == Stop {
		timeout = min(timeout, stopTimeout)
	}
	own := map[State][]string{Master: n.Master, Backup: n.Backup, Fault: n.Fault, Stop: n.Stop, Deleted: n.Deleted}[st]
	if typ == "GROUP" && st == Deleted {
		own = nil
	}
	var jobs []job
	if len(own) > 0 {
		jobs = append(jobs, r.script(users, key, own, nil, timeout))
	}
	if len(n.Any) > 0 {
		jobs = append(jobs, r.script(users, key, n.Any, []string{typ, name, string(st), strconv.Itoa(prio)}, timeout))
	}
	r.enqueue(key, jobs...)
}

// MasterRxLowerPri runs instance's notify_master_rx_lower_pri script, which
// keepalived runs, without extra arguments, when a master hears an
// advertisement of lower priority (vrrp_notify.c send_event_notify).
func (r *Runner) MasterRxLowerPri(users *script.Users, in *config.Instance) {
	if len(in.Notify.MasterRxLowPri) > 0 {
		key := "instance " + in.Name
		r.enqueue(key, r.script(users, key, in.Notify.MasterRxLowPri, nil, r.timeout))
	}
}

// RealServer runs rs's notify_up or notify_down script; keepalived passes
// them no extra arguments (ipwrapper.c do_rs_notifies).
func (r *Runner) RealServer(users *script.Users, vs *config.VirtualServer, rs *config.RealServer, up bool) {
	argv := rs.NotifyDown
	if up {
		argv = rs.NotifyUp
	}
	if len(argv) > 0 {
		key := "real server " + RealServerName(vs, rs) + " of " + VirtualServerName(vs)
		r.enqueue(key, r.script(users, key, argv, nil, r.timeout))
	}
}

// VirtualServer runs vs's quorum_up or quorum_down script, without extra
// arguments (ipwrapper.c do_vs_notifies).
func (r *Runner) VirtualServer(users *script.Users, vs *config.VirtualServer, quorumUp bool) {
	argv := vs.QuorumDown
	if quorumUp {
		argv = vs.QuorumUp
	}
	if len(argv) > 0 {
		key := "virtual server " + VirtualServerName(vs)
		r.enqueue(key, r.script(users, key, argv, nil, r.timeout))
	}
}

// Mail sends an alert about object with send (a Mailer method bound to its
// arguments), after the object's earlier alerts, within MailTimeout. A
// failure is logged.
func (r *Runner) Mail(object string, send func(context.Context) error) {
	r.enqueue("mail "+object, job{what: "alert mail", run: func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, MailTimeout)
		defer cancel()
		if err := send(ctx); err != nil {
			r.log.Warn("alert mail not sent", "object", object, "err", err)
		}
	}})
}

func (r *Runner) enqueue(key string, jobs ...job) {
	if len(jobs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.log.Warn("notifications closed; not running", "object", key, "what", jobs[0].what)
		return
	}
	q, running := r.queues[key]
	r.queues[key] = append(q, jobs...)
	if !running {
		r.wg.Add(1)
		go r.work(key)
	}
}

// work runs key's jobs in order until its queue is empty.
func (r *Runner) work(key string) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		q := r.queues[key]
		if len(q) == 0 {
			delete(r.queues, key)
			r.mu.Unlock()
			return
		}
		j := q[0]
		r.queues[key] = q[1:]
		r.mu.Unlock()
		j.run(r.ctx)
	}
}

// script is the job that runs argv with extra appended as users picks.
func (r *Runner) script(users *script.Users, key string, argv, extra []string, timeout time.Duration) job {
	return job{what: argv[0], run: func(ctx context.Context) {
		log := r.log.With("object", key, "script", argv[0])
		c, err := users.Command(argv, "", "")
		warning := ""
		if err == nil {
			warning, err = c.Check()
		}
		if err != nil {
			// keepalived drops such scripts at start (notify.c
			// check_notify_script_secure, and a default user it cannot
			// set); say so once per script and configuration.
			k := refusal{users, argv[0]}
			r.mu.Lock()
			first := !r.refused[k]
			r.refused[k] = true
			r.mu.Unlock()
			if first {
				log.Error("refusing to run notify script", "err", err)
			}
			return
		}
		if warning != "" {
			log.Warn(warning)
		}
		res, err := c.Run(ctx, timeout, extra...)
		switch {
		case errors.Is(err, context.Canceled):
			log.Warn("notify script killed at shutdown")
		case err != nil:
			log.Error("notify script did not start", "err", err)
		case res.TimedOut:
			log.Warn("notify script timed out", "timeout", timeout)
		case res.ExitCode != 0:
			log.Info("notify script failed", "status", res.ExitCode)
		default:
			log.Debug("notify script done")
		}
	}}
}

// Close stops accepting work and waits for queued scripts and mails to
// finish. If ctx ends first, running scripts are killed, the mail being
// sent fails, the rest are dropped, and Close returns ctx's error once
// every worker has stopped.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	defer r.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	for k := range r.queues {
		r.queues[k] = nil
	}
	r.mu.Unlock()
	r.cancel()
	<-done
	return ctx.Err()
}
