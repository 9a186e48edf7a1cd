package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"tandem/internal/config"
	"tandem/internal/script"
	"tandem/internal/track"
)

// runner is a tracker's Run method.
type runner interface {
	Run(ctx context.Context, out chan<- track.Update) error
}

// watch is one tracked object and who tracks it through which reference.
type watch struct {
	kind  track.Kind
	name  string
	users []user
	// last is the tracker's last status (nil until its first report),
	// run the tracker; both belong to a trackerSet.
	last *track.Update
	run  *running
}

// user is an instance tracking an object. Sync-group tracking applies to
// every member of the group (keepalived vrrp_sync.c).
type user struct {
	instance string
	ref      config.TrackRef
	// via names what makes the instance track the object when that is
	// not the instance itself or its sync group ("track_group TG"): the
	// instance's reason says it.
	via string
}

type watchKey struct {
	kind track.Kind
	name string
}

// trackers collects what the configuration's instances and sync groups
// track, one watch per object however many instances track it.
func trackers(cfg *config.Config) map[watchKey]*watch {
	ws := map[watchKey]*watch{}
	add := func(kind track.Kind, instance string, refs []config.TrackRef) {
		for _, r := range refs {
			k := watchKey{kind, r.Name}
			w := ws[k]
			if w == nil {
				w = &watch{kind: kind, name: r.Name}
				ws[k] = w
			}
			w.users = append(w.users, user{instance: instance, ref: r})
		}
	}
	addAll := func(instance string, ifs, scripts, files, procs, bfds []config.TrackRef) {
		add(track.KindInterface, instance, ifs)
		add(track.KindScript, instance, scripts)
		add(track.KindFile, instance, files)
		add(track.KindProcess, instance, procs)
		add(track.KindBFD, instance, bfds)
	}
	for _, in := range cfg.Instances {
		addAll(in.Name, track.InstanceInterfaces(in), in.TrackScripts, in.TrackFiles, in.TrackProcesses, in.TrackBFD)
	}
	for _, g := range cfg.SyncGroups {
		for _, m := range g.Members {
			addAll(m, g.TrackInterfaces, g.TrackScripts, g.TrackFiles, g.TrackProcesses, g.TrackBFD)
		}
	}
	for group, ifs := range staticTrackedInterfaces(cfg) {
		for _, g := range cfg.TrackGroups {
			if g.Name != group {
				continue
			}
			for _, m := range g.Members {
				for _, r := range ifs {
					k := watchKey{track.KindInterface, r.Name}
					if ws[k] == nil {
						ws[k] = &watch{kind: k.kind, name: k.name}
					}
					// An interface the instance tracks already, with a
					// weight, now puts it in FAULT: keepalived's
					// add_vrrp_to_interface gives a tracked interface
					// weight 0 when a static entry's group adds it again.
					w := ws[k]
					w.users = slices.DeleteFunc(w.users, func(u user) bool { return u.instance == m })
					w.users = append(w.users, user{instance: m, ref: r, via: "track_group " + group})
				}
			}
		}
	}
	return ws
}

// staticTrackedInterfaces gives, per track_group, the interfaces of the
// static entries that name it, as weight-0 references: each instance of
// the group goes to FAULT while one is down (keepalived
// vrrp_static_track.c static_track_group_init: an address's dev, a
// route's dev, a rule's iif; an entry that also has no_track, or has no
// interface, is not tracked).
func staticTrackedInterfaces(cfg *config.Config) map[string][]config.TrackRef {
	out := map[string][]config.TrackRef{}
	add := func(group string, noTrack bool, pos config.Pos, dev string) {
		if group == "" || noTrack || dev == "" {
			return
		}
		if !slices.ContainsFunc(out[group], func(r config.TrackRef) bool { return r.Name == dev }) {
			out[group] = append(out[group], config.TrackRef{Pos: pos, Name: dev})
		}
	}
	for _, a := range cfg.StaticAddresses {
		add(a.TrackGroup, a.NoTrack, a.Pos, a.Dev)
	}
	for _, r := range cfg.StaticRoutes {
		add(r.TrackGroup, r.NoTrack, r.Pos, r.Dev)
	}
	for _, r := range cfg.StaticRules {
		add(r.TrackGroup, r.NoTrack, r.Pos, r.IIF)
	}
	return out
}

// trackerName names a tracked object's contribution to an instance's
// priority (vrrp.Engine.Track).
func trackerName(kind track.Kind, name string) string { return kind.String() + " " + name }

// untracked lists, per instance, the tracked objects whose contribution
// old's configuration gave it and new's no longer does. An instance a
// reload updates in place keeps its state machine, and with it every
// contribution it was given; no tracker will withdraw these.
func untracked(old, new *config.Config) map[string][]string {
	type use struct {
		instance string
		key      watchKey
	}
	now := map[use]bool{}
	for k, w := range trackers(new) {
		for _, u := range w.users {
			now[use{u.instance, k}] = true
		}
	}
	out := map[string][]string{}
	for k, w := range trackers(old) {
		for _, u := range w.users {
			if !now[use{u.instance, k}] && !slices.Contains(out[u.instance], trackerName(k.kind, k.name)) {
				out[u.instance] = append(out[u.instance], trackerName(k.kind, k.name))
			}
		}
	}
	return out
}

// newRunner builds the tracker for one watched object; users picks the
// identity of cfg's scripts, hub holds the BFD sessions (nil: none).
func newRunner(cfg *config.Config, users *script.Users, hub *bfdHub, w *watch, log *slog.Logger) (runner, error) {
	switch w.kind {
	case track.KindBFD:
		if hub == nil {
			return nil, errNoBFD
		}
		if cfg.BFD(w.name) != nil {
			return &bfdTracker{hub: hub, name: w.name}, nil
		}
	case track.KindInterface:
		return track.NewInterface(w.name, nil, log), nil
	case track.KindScript:
		for _, s := range cfg.Scripts {
			if s.Name == w.name {
				return track.NewScript(s, users, log)
			}
		}
	case track.KindFile:
		for _, f := range cfg.TrackFiles {
			if f.Name == w.name {
				if err := track.InitFile(f); err != nil {
					return nil, err
				}
				return track.NewFile(f, log)
			}
		}
	case track.KindProcess:
		for _, p := range cfg.TrackProcesses {
			if p.Name == w.name {
				return track.NewProcess(p, track.DefaultProcessPoll, log), nil
			}
		}
	}
	return nil, fmt.Errorf("%s %s is not defined", w.kind, w.name)
}

// sink is what the trackers' statuses go to: the VRRP engine's Track.
type sink interface {
	Track(instance, name string, weight int, fault bool, detail string)
}

// trackerSet runs a tracker per watched object and feeds their updates to
// the engine as priority deltas and faults. A reload applies config.Diff
// to it: a tracker whose object is unchanged keeps running with its state,
// and only the instances' use of it is updated.
type trackerSet struct {
	ctx context.Context // the daemon's
	eng sink
	log *slog.Logger
	// bfd holds the sessions track_bfd follows (nil: none yet); set by
	// the daemon before start and reload.
	bfd *bfdHub

	mu sync.Mutex // ws, and each watch's users and last
	ws map[watchKey]*watch
}

// running is the tracker of one watch: its runner's goroutine, and the
// goroutine that applies what the runner reports.
type running struct {
	r      runner
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (r *running) stop() {
	r.cancel()
	r.wg.Wait()
}

// startTrackers runs the trackers of cfg, their scripts run as users
// picks, until ctx ends or stop is called.
func startTrackers(ctx context.Context, cfg *config.Config, users *script.Users, hub *bfdHub, eng sink, log *slog.Logger) (*trackerSet, error) {
	s := &trackerSet{ctx: ctx, eng: eng, log: log, bfd: hub, ws: trackers(cfg)}
	for _, w := range s.ws {
		if err := s.start(cfg, users, w); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// start runs w's tracker.
func (s *trackerSet) start(cfg *config.Config, users *script.Users, w *watch) error {
	r, err := newRunner(cfg, users, s.bfd, w, s.log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	run := &running{r: r, cancel: cancel}
	w.run = run
	// Unbuffered: an update the runner has handed over is applied before
	// the applying goroutine looks at ctx again, and none is left behind
	// once both goroutines have returned.
	out := make(chan track.Update)
	run.wg.Go(func() {
		if err := r.Run(ctx, out); err != nil {
			s.log.Error("tracker stopped", "kind", w.kind, "name", w.name, "err", err)
		}
	})
	run.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-out:
				s.apply(w, u)
			}
		}
	})
	return nil
}

// apply records u as w's status and gives each instance tracking w its
// contribution.
func (s *trackerSet) apply(w *watch, u track.Update) {
	if u.Err != nil {
		// keepalived disables a script it cannot or may not run ("not
		// accessible", security) and runs the instances without it; so
		// does Tandem, loudly.
		s.log.Error("tracked object disabled; instances run without it", "kind", u.Kind, "name", u.Name, "err", u.Err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.last = &u
	s.contribute(w)
	s.log.Info("tracked object changed", "kind", u.Kind, "name", u.Name, "ok", u.OK, "value", u.Value)
}

// contribute gives each user of w the contribution of w's last status, if
// it has one yet. Giving an instance the contribution it already has
// changes nothing (vrrp's TrackerChanged sets, it does not add).
func (s *trackerSet) contribute(w *watch) {
	if w.last == nil {
		return
	}
	for _, us := range w.users {
		delta, fault := track.Delta(us.ref, *w.last)
		detail := w.last.Describe()
		if us.via != "" {
			detail = us.via + ": " + detail
		}
		s.eng.Track(us.instance, trackerName(w.kind, w.name), delta, fault, detail)
	}
}

// stop stops every tracker and waits for them.
func (s *trackerSet) stop() {
	for _, w := range s.ws {
		if w.run != nil {
			w.run.stop()
		}
	}
}

// reload applies the change from old to cfg, as config.Diff sees it:
//   - a tracked object no instance tracks any more: its tracker stops;
//   - a new one, or one whose identity changed (another command or user
//     for a script, another file, another process match): a new tracker
//     starts. Until it reports, the instances keep the contribution of
//     the old one (a re-created one), or have none (a new one), as at
//     start (track.Update: no weight until the first status);
//   - one changed in place keeps its tracker and its status where its
//     kind allows (keep says what each kind takes on in place), else it
//     restarts like a re-created one;
//   - unchanged ones keep running untouched, and the script is not run
//     again (unless it would now run as another user: keep).
//
// Then every tracker's users are the ones cfg gives it, and each gets the
// contribution of the last status at once, with its (possibly new) weight:
// a weight change applies without running the script, and an instance the
// engine's reload re-created gets the status it had. An instance that no
// longer tracks an object has that contribution withdrawn.
func (s *trackerSet) reload(old, cfg *config.Config, users *script.Users) error {
	changes := trackerChanges(config.Diff(old, cfg))
	next := trackers(cfg)
	// Trackers stop outside s.mu: their last update may be waiting for it.
	for k, w := range s.ws {
		if w.run == nil {
			continue // it did not start; it is tried again below
		}
		switch {
		case next[k] == nil, changes[k] == config.Recreated, !keep(cfg, users, w, changes[k]):
			// A re-created object's old status stays in force until
			// the new tracker's first report.
			w.run.stop()
			w.run = nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, nw := range next {
		if w := s.ws[k]; w != nil {
			w.users = nw.users
			next[k] = w
		}
		w := next[k]
		if w.run == nil {
			if err := s.start(cfg, users, w); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		s.contribute(w)
	}
	s.ws = next
	for inst, names := range untracked(old, cfg) {
		for _, n := range names {
			s.eng.Track(inst, n, 0, false, n+" no longer tracked") // no contribution, no fault
		}
	}
	return errors.Join(errs...)
}

// keep gives w's running tracker cfg's settings for its object, which
// Diff found unchanged or changed in place, and reports whether it could;
// one that cannot is restarted. What is in place, per kind:
//   - vrrp_script: interval, timeout, rise, fall (track.Script.Reconfigure,
//     which keeps the status); weight and reverse are the users' (reload);
//     init_fail only says how a script starts, so it waits for the next
//     start. A script that would now run as another identity (global_defs
//     script_user, which is not the script's object) or under another
//     enable_script_security restarts, as a script whose own user changed
//     is re-created: its results as the old user say nothing of the new.
//   - track_file: weight and reverse are the users'; init_file and
//     init_overwrite write the file at start only (keepalived.conf(5)),
//     so nothing runs differently.
//   - vrrp_track_process: weight and reverse are the users'; quorum and
//     delays are the tracker's core state, which starts again (restart:
//     the process table is read at once, and the old status stays in
//     force until then).
//   - track_interface: its name is all there is.
//   - track_bfd: weight and reverse are the users'; a session changed in
//     place (timers, passive, ttl) is the same session.
func keep(cfg *config.Config, users *script.Users, w *watch, change config.Change) bool {
	switch r := w.run.r.(type) {
	case *track.Script:
		i := slices.IndexFunc(cfg.Scripts, func(sc *config.Script) bool { return sc.Name == w.name })
		if i < 0 {
			return false
		}
		sc := cfg.Scripts[i]
		if cmd, err := users.Command(sc.Command, sc.User, sc.Group); err != nil || !r.Runs(cmd) {
			return false // a new tracker reports the error
		}
		if change == config.InPlace {
			r.Reconfigure(sc)
		}
		return true
	case *track.File, *bfdTracker:
		// A session changed in place is the same session (its timers
		// change on the running one).
		return true
	}
	return change == config.Unchanged
}

// trackerChanges is Diff's verdict on each tracked object with a
// definition of its own (interfaces have none: their name is all).
func trackerChanges(d config.ConfigDiff) map[watchKey]config.Change {
	out := map[watchKey]config.Change{}
	for _, c := range d.Scripts {
		if c.New != nil {
			out[watchKey{track.KindScript, c.New.Name}] = c.Change
		}
	}
	for _, c := range d.TrackFiles {
		if c.New != nil {
			out[watchKey{track.KindFile, c.New.Name}] = c.Change
		}
	}
	for _, c := range d.TrackProcesses {
		if c.New != nil {
			out[watchKey{track.KindProcess, c.New.Name}] = c.Change
		}
	}
	for _, c := range d.BFDInstances {
		if c.New != nil {
			out[watchKey{track.KindBFD, c.New.Name}] = c.Change
		}
	}
	return out
}
