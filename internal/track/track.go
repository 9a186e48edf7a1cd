// Package track watches the objects a VRRP instance tracks, keepalived's
// vrrp_script, track_file, track_interface and vrrp_track_process, and
// reports each one's status as an Update on a channel. Delta turns a status
// into what the tracking instance does with it: a priority change or FAULT.
//
// The cores (ScriptState, ProcessState, Delta, ParseFileValue, the process
// matcher) are pure and take time as an argument; the runners (Script, File,
// Interface, Process) are thin shells around them that own a goroutine only
// for the duration of their Run call, which returns when its context ends.
package track

import (
	"context"
	"log/slog"

	"tandem/internal/config"
)

// Kind is the kind of tracked object.
type Kind uint8

// The kinds of tracked objects.
const (
	KindScript Kind = iota + 1
	KindFile
	KindInterface
	KindProcess
	// KindBFD is a bfd_instance's session, tracked with track_bfd: OK
	// while Up.
	KindBFD
)

// String names the kind as keepalived's configuration keyword does.
func (k Kind) String() string {
	switch k {
	case KindScript:
		return "vrrp_script"
	case KindFile:
		return "track_file"
	case KindInterface:
		return "track_interface"
	case KindProcess:
		return "vrrp_track_process"
	case KindBFD:
		return "bfd_instance"
	}
	return "unknown"
}

// LogValue logs the kind's name: slog's JSON handler would print the
// number (it marshals the value, not its String).
func (k Kind) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Update is the new status of one tracked object. Until a runner sends its
// first Update the object's status is unknown: keepalived then adds no
// weight, and an instance tracking it with weight 0 waits in INIT
// (vrrp_track.c initialise_track_script_state, num_script_init).
type Update struct {
	Kind Kind
	Name string
	// OK is the object's status: the script passed (after rise/fall), the
	// interface is up and running, the process quorum is held. For a
	// track_file it is true when the file holds 0, which is how keepalived
	// reads a file tracked with weight 0 (keepalived.conf(5) "Track files").
	OK bool
	// Value is the number read from a track_file, the number of matching
	// processes of a vrrp_track_process, and the last exit status of a
	// vrrp_script (-1 when it was killed or could not be started).
	Value int
	// Err says why the status is failed when the object itself was not
	// looked at, e.g. a script refused by enable_script_security.
	Err error
}

// Bounds of a track_file's contribution (vrrp_track.c
// initialise_vrrp_file_tracking_priorities, track_file.c
// process_update_vrrp_track_file_status): a result at or below -254 is a
// fault, a result above 253 counts as 253.
const (
	fileFault = -254
	fileMax   = 253
)

// Delta is what a tracked object's status does to an instance or sync group
// that tracks it through ref (whose Weight and Reverse the config package
// has already resolved from the object's own definition when not given).
//
// For scripts, interfaces and processes (keepalived.conf(5) track_interface
// and vrrp_track.c process_script_update_priority): with weight 0 a failure
// means FAULT, and with reverse a success does; a positive weight is added
// while the object is OK, a negative weight is added while it is failed, and
// reverse negates the amount added.
//
// For track files (keepalived.conf(5) "Track files"): with weight 0 a
// non-zero value means FAULT (with reverse, a zero value does); otherwise
// value*weight, negated by reverse, is added, capped at 253, and a result of
// -254 or less means FAULT.
func Delta(ref config.TrackRef, u Update) (delta int, fault bool) {
	mult := 1
	if ref.Reverse {
		mult = -1
	}
	if u.Kind == KindFile {
		if ref.Weight == 0 {
			return 0, (u.Value != 0) != ref.Reverse
		}
		s := int64(u.Value) * int64(ref.Weight) * int64(mult)
		if s <= fileFault {
			return 0, true
		}
		return int(min(s, fileMax)), false
	}
	if ref.Weight == 0 {
		return 0, u.OK == ref.Reverse
	}
	if u.OK == (ref.Weight > 0) {
		return ref.Weight * mult, false
	}
	return 0, false
}

// send delivers u unless ctx ends first; it reports whether u was sent.
func send(ctx context.Context, out chan<- Update, u Update) bool {
	select {
	case out <- u:
		return true
	case <-ctx.Done():
		return false
	}
}
