package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// logAdapter hands GoBGP's log lines to the daemon's slog logger and
// keeps, per neighbor, the last failure among them: GoBGP reports a
// session's errors (a refused connection, a NOTIFICATION, a hold timer
// expiry) only in its log.
type logAdapter struct {
	log  *slog.Logger
	errs *lastErrors
}

// lastErrors is each neighbor's last failure, by address.
type lastErrors struct {
	mu sync.Mutex
	m  map[string]string
}

func (e *lastErrors) set(addr, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[addr] = msg
}

func (e *lastErrors) get(addr string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[addr]
}

func (e *lastErrors) forget(addr string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, addr)
}

// failures are GoBGP's messages below Warn that still report a session's
// failure, with the field that says why.
var failures = map[string]string{"Peer Down": "Reason", "failed to connect": "Error"}

// bgpIdle is how GoBGP's state changes name Idle (bgp.FSMState's
// String).
const bgpIdle = "BGP_FSM_IDLE"

func (l *logAdapter) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	key, _ := fields["Key"].(string)
	switch why, ok := failures[msg]; {
	case key == "":
	case ok:
		l.errs.set(key, fmt.Sprintf("%s: %v", msg, fields[why]))
	case msg == "state changed" && fields["new"] == bgpIdle:
		// A session that failed before it was established is reported
		// only so: bird's "Bad peer AS" NOTIFICATION to an OPEN is
		// "invalid-msg" in OPENCONFIRM.
		l.errs.set(key, fmt.Sprintf("session down in %v: %v", fields["old"], fields["reason"]))
	case level >= slog.LevelWarn:
		l.errs.set(key, fmt.Sprintf("%s: %v", msg, detail(fields)))
	}
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, 2*len(fields))
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, k, fields[k])
	}
	l.log.Log(context.Background(), level, "bgp: "+msg, args...)
}

// detail is a failure's cause among GoBGP's fields.
func detail(f gobgplog.Fields) any {
	for _, k := range []string{"Error", "Data", "Reason"} {
		if v, ok := f[k]; ok {
			return v
		}
	}
	return f
}

func (l *logAdapter) Panic(msg string, f gobgplog.Fields) {
	l.emit(slog.LevelError, msg, f)
	panic(msg)
}

// Fatal is logged as an error: a library must not end the process.
func (l *logAdapter) Fatal(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l *logAdapter) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l *logAdapter) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, f) }
func (l *logAdapter) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelInfo, msg, f) }
func (l *logAdapter) Debug(msg string, f gobgplog.Fields) { l.emit(slog.LevelDebug, msg, f) }

// SetLevel is ignored: the slog handler decides what is written.
func (l *logAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel is Debug, so that GoBGP hands over the failures it logs at
// debug level ("failed to connect"); the handler drops what it does not
// want.
func (l *logAdapter) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
