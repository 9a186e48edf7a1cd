package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"tandem/internal/config"
	"tandem/internal/script"
	"tandem/internal/track"
	"tandem/internal/vrrp"
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
}

// user is an instance tracking an object. Sync-group tracking applies to
// every member of the group (keepalived vrrp_sync.c).
type user struct {
	instance string
	ref      config.TrackRef
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
	addAll := func(instance string, ifs, scripts, files, procs []config.TrackRef) {
		add(track.KindInterface, instance, ifs)
		add(track.KindScript, instance, scripts)
		add(track.KindFile, instance, files)
		add(track.KindProcess, instance, procs)
	}
	for _, in := range cfg.Instances {
		addAll(in.Name, track.InstanceInterfaces(in), in.TrackScripts, in.TrackFiles, in.TrackProcesses)
	}
	for _, g := range cfg.SyncGroups {
		for _, m := range g.Members {
			addAll(m, g.TrackInterfaces, g.TrackScripts, g.TrackFiles, g.TrackProcesses)
		}
	}
	return ws
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
// identity of cfg's scripts.
func newRunner(cfg *config.Config, users *script.Users, w *watch, log *slog.Logger) (runner, error) {
	switch w.kind {
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

// startTrackers runs a tracker per watched object, its scripts as users
// picks, and feeds their updates to the engine as priority deltas and
// faults, until ctx ends. The returned function waits for the trackers to
// stop.
func startTrackers(ctx context.Context, cfg *config.Config, users *script.Users, eng *vrrp.Engine, log *slog.Logger) (func(), error) {
	ws := trackers(cfg)
	updates := make(chan track.Update, 64)
	var wg sync.WaitGroup
	for _, w := range ws {
		r, err := newRunner(cfg, users, w, log)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx, updates); err != nil {
				log.Error("tracker stopped", "kind", w.kind, "name", w.name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-updates:
				w := ws[watchKey{u.Kind, u.Name}]
				if w == nil {
					continue
				}
				if u.Err != nil {
					// keepalived disables a script it cannot or may not
					// run ("not accessible", security) and runs the
					// instances without it; so does Tandem, loudly.
					log.Error("tracked object disabled; instances run without it", "kind", u.Kind, "name", u.Name, "err", u.Err)
					continue
				}
				for _, us := range w.users {
					delta, fault := track.Delta(us.ref, u)
					eng.Track(us.instance, trackerName(u.Kind, u.Name), delta, fault)
				}
				log.Info("tracked object changed", "kind", u.Kind, "name", u.Name, "ok", u.OK, "value", u.Value)
			}
		}
	}()
	return func() {
		wg.Wait()
		<-done
	}, nil
}
