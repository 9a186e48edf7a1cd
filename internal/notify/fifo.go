package notify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/config/syntax"
	"tandem/internal/script"
)

// fifoMode is the mode keepalived creates notify FIFOs with, before the
// umask (core/notify.c fifo_open: S_IRUSR|S_IWUSR|S_IRGRP|S_IROTH).
const fifoMode = 0o644

// CheckFIFOPath reports whether path can be a notify FIFO: absent in a
// directory that exists (it will be created) or a FIFO. Anything else, a
// regular file say, is refused: writing events into it is not what its
// owner wants.
func CheckFIFOPath(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return fmt.Errorf("cannot create %s: %w", path, err)
		}
		return nil
	case err != nil:
		return err
	case st.Mode()&fs.ModeNamedPipe == 0:
		return fmt.Errorf("%s exists and is not a FIFO (it is a %s); remove it or name another path", path, fileKind(st.Mode()))
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "file of mode " + m.String()
}

// FIFO is one open notify FIFO. It is opened read-write and non-blocking,
// as keepalived opens it (core/notify.c fifo_open: O_RDWR|O_NONBLOCK): the
// open never waits for a reader, and the pipe's kernel buffer (64 KiB on
// Linux) is the bounded queue of lines waiting for one. A line that does
// not fit is dropped, not waited for, so that a FIFO nobody reads never
// holds the daemon back; drops are counted and logged once per run of
// them. Lines are shorter than PIPE_BUF, so each is written whole or not
// at all.
type FIFO struct {
	kind    string // the keyword, for logs: notify_fifo, vrrp_notify_fifo, lvs_notify_fifo
	path    string
	created bool // removed at Close, as keepalived's fifo_close does
	log     *slog.Logger
	// stop ends the FIFO's script; scriptDone is closed once it has.
	stop       context.CancelFunc
	scriptDone chan struct{}

	mu      sync.Mutex
	fd      int // -1 once closed
	dropped uint64
}

// OpenFIFO opens the FIFO f names (keyword kind): it creates it (mode
// 0644 less the umask) if it does not exist, owned by f's user and group as
// users resolves them, refuses a path that is not a FIFO, and starts f's
// script, if any, with the path as its last argument; the script runs until
// Close.
func OpenFIFO(kind string, f *config.FIFO, users *script.Users, log *slog.Logger) (*FIFO, error) {
	if err := CheckFIFOPath(f.Path); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	fi := &FIFO{kind: kind, path: f.Path, fd: -1, log: log.With(kind, f.Path)}
	err := unix.Mkfifo(f.Path, fifoMode)
	switch {
	case err == nil:
		fi.created = true
		if err := fi.chown(f, users); err != nil {
			// keepalived logs and goes on: the FIFO works, as root's.
			fi.log.Warn("notify FIFO created, but not given to its user", "err", err)
		}
	case !errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("%s: create %s: %w", kind, f.Path, err)
	}
	fd, err := unix.Open(f.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		fi.unlink()
		return nil, fmt.Errorf("%s: open %s: %w", kind, f.Path, err)
	}
	// The path may have been replaced between the check and the open.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		fi.unlink()
		return nil, fmt.Errorf("%s: %s is not a FIFO", kind, f.Path)
	}
	fi.fd = fd
	if len(f.Script) > 0 {
		if err := fi.startScript(f, users); err != nil {
			fi.Close()
			return nil, err
		}
	}
	return fi, nil
}

func (fi *FIFO) chown(f *config.FIFO, users *script.Users) error {
	cred, err := users.Credential(f.User, f.Group)
	if err != nil || cred == nil {
		return err
	}
	return os.Chown(f.Path, int(cred.Uid), int(cred.Gid))
}

// startScript starts f's script through package script (as the user it
// names, under enable_script_security), with the FIFO's path appended,
// and no timeout: it reads the FIFO for as long as Tandem runs. When it
// ends on its own, that is logged, as keepalived does ("notify fifo script
// terminated"); it is not restarted.
func (fi *FIFO) startScript(f *config.FIFO, users *script.Users) error {
	c, err := users.Command(f.Script, f.ScriptUser, f.ScriptGroup)
	warning := ""
	if err == nil {
		warning, err = c.Check()
	}
	if err != nil {
		return fmt.Errorf("%s_script %s: %w", fi.kind, f.Script[0], err)
	}
	if warning != "" {
		fi.log.Warn(warning, "script", f.Script[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	fi.stop, fi.scriptDone = cancel, make(chan struct{})
	go func() {
		defer close(fi.scriptDone)
		res, err := c.Run(ctx, 0, fi.path)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			fi.log.Error("notify FIFO script did not start", "script", f.Script[0], "err", err)
		default:
			fi.log.Warn("notify FIFO script terminated", "script", f.Script[0], "status", res.ExitCode)
		}
	}()
	return nil
}

// Write writes line (which ends in a newline) without ever blocking.
func (fi *FIFO) Write(line string) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if fi.fd < 0 {
		return
	}
	_, err := unix.Write(fi.fd, []byte(line))
	switch {
	case err == nil:
		if fi.dropped > 0 {
			fi.log.Info("notify FIFO read again", "dropped", fi.dropped)
			fi.dropped = 0
		}
	case errors.Is(err, unix.EAGAIN):
		fi.dropped++
		if fi.dropped == 1 {
			fi.log.Warn("notify FIFO full (nobody reads it?): dropping lines until it drains")
		}
	default:
		fi.log.Warn("notify FIFO write failed", "err", err)
	}
}

// Dropped is the number of lines dropped since the FIFO last took one.
func (fi *FIFO) Dropped() uint64 {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.dropped
}

// Close removes the FIFO if Tandem created it (first, so that a reader
// that reopens it in a loop cannot find it again, as keepalived's
// fifo_close), closes it, and stops its script.
func (fi *FIFO) Close() {
	fi.unlink()
	fi.mu.Lock()
	if fi.fd >= 0 {
		unix.Close(fi.fd)
		fi.fd = -1
	}
	fi.mu.Unlock()
	if fi.stop != nil {
		fi.stop()
		<-fi.scriptDone
	}
}

func (fi *FIFO) unlink() {
	if fi.created {
		if err := os.Remove(fi.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fi.log.Warn("notify FIFO not removed", "err", err)
		}
		fi.created = false
	}
}

// FIFOs are a configuration's notify FIFOs: notify_fifo gets every line,
// vrrp_notify_fifo the VRRP ones, lvs_notify_fifo the health checker's.
// A nil *FIFOs, or one without a given FIFO, writes nothing there.
type FIFOs struct {
	all, vrrp, lvs *FIFO
}

// OpenFIFOs opens the FIFOs o configures. On an error nothing stays open.
func OpenFIFOs(o *config.Ops, users *script.Users, log *slog.Logger) (*FIFOs, error) {
	s := &FIFOs{}
	for _, x := range []struct {
		kind string
		cfg  *config.FIFO
		dst  **FIFO
	}{{"notify_fifo", &o.NotifyFIFO, &s.all}, {"vrrp_notify_fifo", &o.VRRPNotifyFIFO, &s.vrrp}, {"lvs_notify_fifo", &o.LVSNotifyFIFO, &s.lvs}} {
		if x.cfg.Path == "" {
			continue
		}
		f, err := OpenFIFO(x.kind, x.cfg, users, log)
		if err != nil {
			s.Close()
			return nil, err
		}
		*x.dst = f
	}
	return s, nil
}

// Close closes every FIFO.
func (s *FIFOs) Close() {
	if s == nil {
		return
	}
	for _, f := range []*FIFO{s.all, s.vrrp, s.lvs} {
		if f != nil {
			f.Close()
		}
	}
}

func (s *FIFOs) write(specific *FIFO, line string) {
	for _, f := range []*FIFO{s.all, specific} {
		if f != nil {
			f.Write(line)
		}
	}
}

// vrrpLine is keepalived's VRRP FIFO line (vrrp_notify.c notify_fifo):
// TYPE "NAME" STATE PRIORITY, the notify script's last four arguments.
func (s *FIFOs) vrrpLine(typ, name, state string, prio int) {
	if s == nil {
		return
	}
	s.write(s.vrrp, typ+` "`+name+`" `+state+" "+strconv.Itoa(prio)+"\n")
}

// Instance writes `INSTANCE "NAME" STATE PRIORITY` for in entering st with
// effective priority prio. DELETED is written as FAULT unless in has
// notify_deleted, as keepalived does for its scripts and FIFOs alike.
func (s *FIFOs) Instance(in *config.Instance, st State, prio int) {
	if st == Deleted && len(in.Notify.Deleted) == 0 {
		st = Fault
	}
	s.vrrpLine("INSTANCE", in.Name, string(st), prio)
}

// Group writes `GROUP "NAME" STATE 0` for sync group name entering st.
func (s *FIFOs) Group(name string, st State) {
	s.vrrpLine("GROUP", name, string(st), 0)
}

// MasterRxLowerPri writes `INSTANCE "NAME" MASTER_RX_LOWER_PRI PRIORITY`:
// a master heard an advertisement of lower priority (vrrp_notify.c
// send_event_notify).
func (s *FIFOs) MasterRxLowerPri(name string, prio int) {
	s.vrrpLine("INSTANCE", name, "MASTER_RX_LOWER_PRI", prio)
}

// Priority writes `INSTANCE "NAME" MASTER_PRIORITY|BACKUP_PRIORITY PRIORITY`
// (st is MasterPriority or BackupPriority) when the effective priority of
// an instance changes and notify_priority_changes is set for it
// (keepalived.conf(5); vrrp_notify.c send_instance_priority_notifies:
// MASTER_PRIORITY while master, else BACKUP_PRIORITY). The caller decides
// whether notify_priority_changes applies.
func (s *FIFOs) Priority(name string, st State, prio int) {
	s.vrrpLine("INSTANCE", name, string(st), prio)
}

// RealServer writes `RS [ip]:proto:port VS UP|DOWN` (check/ipwrapper.c
// notify_fifo_rs). keepalived also writes the string's terminating NUL
// byte after the newline; Tandem writes the line only, which every
// line-reading consumer sees the same.
func (s *FIFOs) RealServer(vs *config.VirtualServer, rs *config.RealServer, up bool) {
	if s == nil {
		return
	}
	s.write(s.lvs, "RS "+RealServerName(vs, rs)+" "+VirtualServerName(vs)+" "+upDown(up)+"\n")
}

// VirtualServer writes `VS VS UP|DOWN` when vs's quorum is gained or lost
// (check/ipwrapper.c notify_fifo_vs).
func (s *FIFOs) VirtualServer(vs *config.VirtualServer, up bool) {
	if s == nil {
		return
	}
	s.write(s.lvs, "VS "+VirtualServerName(vs)+" "+upDown(up)+"\n")
}

// CheckFIFOs reports, at each FIFO's keyword, the notify FIFOs of o whose
// path cannot be a FIFO (CheckFIFOPath), for tandem check: such a path
// stops tandem run at start.
func CheckFIFOs(o *config.Ops) config.Diagnostics {
	var out config.Diagnostics
	for _, x := range []struct {
		kind string
		f    *config.FIFO
	}{{"notify_fifo", &o.NotifyFIFO}, {"vrrp_notify_fifo", &o.VRRPNotifyFIFO}, {"lvs_notify_fifo", &o.LVSNotifyFIFO}} {
		if x.f.Path == "" {
			continue
		}
		if err := CheckFIFOPath(x.f.Path); err != nil {
			out = append(out, syntax.Diagnostic{Pos: x.f.Pos, Severity: config.Error, Msg: x.kind + ": " + err.Error()})
		}
	}
	return out
}
