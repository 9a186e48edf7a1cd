package config

import (
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ops holds the process-level keywords of keepalived.conf(5): notify
// FIFOs, the network namespace, the umask and real-time scheduling. It is
// embedded in Global (its fields appear there in JSON).
type Ops struct {
	// NotifyFIFO gets every VRRP and health-checker event,
	// VRRPNotifyFIFO the VRRP ones, LVSNotifyFIFO the checker ones
	// (keepalived.conf(5) notify_fifo, vrrp_notify_fifo, lvs_notify_fifo).
	NotifyFIFO     FIFO `json:"notify_fifo,omitzero"`
	VRRPNotifyFIFO FIFO `json:"vrrp_notify_fifo,omitzero"`
	LVSNotifyFIFO  FIFO `json:"lvs_notify_fifo,omitzero"`
	// FIFOWriteStatesOnReload writes the state of every instance and
	// sync group whose state a reload did not change to the VRRP FIFOs
	// (keepalived.conf(5) fifo_write_vrrp_states_on_reload).
	FIFOWriteStatesOnReload bool `json:"fifo_write_vrrp_states_on_reload,omitempty"`

	// NetNamespace is the network namespace (/run/netns/NAME) Tandem
	// runs in (keepalived.conf(5) net_namespace, a root keyword).
	NetNamespace string `json:"net_namespace,omitempty"`

	// Umask is the file-creation mask (keepalived.conf(5) umask); nil:
	// keepalived's default, IWGRP|IWOTH (022).
	Umask *uint32 `json:"umask,omitempty"`

	// MaxAutoPriority is the SCHED_RR priority of the VRRP path
	// (keepalived.conf(5) max_auto_priority): 0 leaves the normal
	// scheduler, -1 too (it only silences keepalived's start-up notice).
	MaxAutoPriority int `json:"max_auto_priority,omitempty"`
	// MinAutoPriorityDelay is how late a timer may run before keepalived
	// raises its priority (min_auto_priority_delay; default 1 s).
	MinAutoPriorityDelay Duration `json:"min_auto_priority_delay,omitempty"`

	// VRRPThread is how the VRRP engine's thread is scheduled
	// (vrrp_rt_priority, vrrp_priority, vrrp_cpu_affinity,
	// vrrp_rlimit_rttime, vrrp_no_swap).
	VRRPThread ThreadSched `json:"vrrp_thread,omitzero"`
	// BFDThread is how the BFD engine's thread is scheduled
	// (bfd_rt_priority, bfd_priority, bfd_cpu_affinity,
	// bfd_rlimit_rttime, bfd_no_swap).
	BFDThread ThreadSched `json:"bfd_thread,omitzero"`
}

// ThreadSched is how a role's protocol thread is scheduled: keepalived
// sets these on the role's process (keepalived.conf(5) vrrp_rt_priority
// and friends; lib/process.c set_process_priorities), Tandem on the
// role's thread (internal/realtime), except NoSwap, which locks the
// whole process in memory.
type ThreadSched struct {
	// RTPriority is the SCHED_RR priority, 1..99; 0: the normal
	// scheduler. max_auto_priority raises it further from there.
	RTPriority int `json:"rt_priority,omitempty"`
	// Nice is the nice value, -20..19 (*_priority), used only without
	// RTPriority.
	Nice int `json:"priority,omitempty"`
	// CPUs are the CPUs the thread may run on (*_cpu_affinity).
	CPUs []int `json:"cpu_affinity,omitempty"`
	// RLimitRTTime is RLIMIT_RTTIME while real-time (*_rlimit_rttime,
	// microseconds, at least 2); 0: keepalived's default, 10 ms.
	RLimitRTTime Duration `json:"rlimit_rttime,omitempty"`
	// NoSwap locks the process in memory (*_no_swap; mlockall(2)).
	NoSwap bool `json:"no_swap,omitempty"`
}

// Equal reports whether s and t schedule a thread the same way.
func (s ThreadSched) Equal(t ThreadSched) bool {
	return s.RTPriority == t.RTPriority && s.Nice == t.Nice && s.RLimitRTTime == t.RLimitRTTime && s.NoSwap == t.NoSwap && slices.Equal(s.CPUs, t.CPUs)
}

// DefaultUmask is keepalived's default umask, IWGRP|IWOTH (keepalived.conf(5)
// umask).
const DefaultUmask = 0o022

// FIFO is a notify FIFO: its path, the user and group that own it when
// Tandem creates it, and the script started to read it.
type FIFO struct {
	Pos  Pos    `json:"-"`
	Path string `json:"path,omitempty"`
	// User and Group own a FIFO Tandem creates (empty: the default script
	// user, as keepalived's get_default_script_user).
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// Script is started once the FIFO exists, with the FIFO's path as its
	// last argument, and runs until Tandem stops.
	Script      []string `json:"script,omitempty"`
	ScriptUser  string   `json:"script_user,omitempty"`
	ScriptGroup string   `json:"script_group,omitempty"`
}

// maxRTPriority is sched_get_priority_max(SCHED_RR) on Linux, the largest
// max_auto_priority keepalived takes.
const maxRTPriority = 99

func (p *parser) opsHandlers(o *Ops) map[string]handler {
	return merge(p.threadHandlers("vrrp", &o.VRRPThread), p.threadHandlers("bfd", &o.BFDThread), map[string]handler{
		"notify_fifo":                      p.fifoTo(&o.NotifyFIFO),
		"vrrp_notify_fifo":                 p.fifoTo(&o.VRRPNotifyFIFO),
		"lvs_notify_fifo":                  p.fifoTo(&o.LVSNotifyFIFO),
		"notify_fifo_script":               p.fifoScriptTo(&o.NotifyFIFO),
		"vrrp_notify_fifo_script":          p.fifoScriptTo(&o.VRRPNotifyFIFO),
		"lvs_notify_fifo_script":           p.fifoScriptTo(&o.LVSNotifyFIFO),
		"fifo_write_vrrp_states_on_reload": p.setConst(&o.FIFOWriteStatesOnReload, true),
		"umask":                            p.umaskTo(&o.Umask),
		// max_auto_priority [-1..99]; alone it means the maximum
		// (global_parser.c max_auto_priority_handler).
		"max_auto_priority": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 0, 1) {
				return
			}
			o.MaxAutoPriority = maxRTPriority
			if len(n.Args) == 1 {
				if v, ok := p.intTok(n, n.Args[0], -1, maxRTPriority); ok {
					o.MaxAutoPriority = v
				}
			}
		},
		// min_auto_priority_delay USECS in [1, 10000000].
		"min_auto_priority_delay": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			if v, ok := p.uintTok(n, n.Args[0], 1, 10_000_000); ok {
				o.MinAutoPriorityDelay = Duration(time.Duration(v) * time.Microsecond)
			}
		},
	})
}

// minRTPriority is sched_get_priority_min(SCHED_RR) on Linux.
const minRTPriority = 1

// threadHandlers reads a role's scheduling keywords (role_rt_priority,
// role_priority, role_cpu_affinity, role_rlimit_rttime and its deprecated
// spelling role_rlimit_rtime, role_no_swap) into s, with keepalived's
// ranges (global_parser.c get_realtime_priority, get_priority,
// get_cpu_affinity, get_rt_rlimit).
func (p *parser) threadHandlers(role string, s *ThreadSched) map[string]handler {
	rlimit := func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 1) {
			return
		}
		if strings.HasSuffix(n.Keyword.Text, "_rlimit_rtime") {
			p.warnf(n.Keyword.Pos, "%s is deprecated; read as %s_rlimit_rttime", n.Keyword.Text, role)
		}
		if v, ok := p.uintTok(n, n.Args[0], 1, math.MaxUint32); ok {
			// keepalived halves it for the soft limit, which must not be
			// 0: 1 is read as 2.
			s.RLimitRTTime = Duration(time.Duration(max(v, 2)) * time.Microsecond)
		}
	}
	return map[string]handler{
		// Out of range is clamped with a warning, as keepalived does; no
		// value, or not a number, is an error that leaves the setting
		// as it was.
		role + "_rt_priority": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			v, err := strconv.Atoi(n.Args[0].Text)
			if err != nil {
				p.errorf(n.Args[0].Pos, "%s: %q is not an integer", n.Keyword.Text, n.Args[0].Text)
				return
			}
			if c := min(max(v, minRTPriority), maxRTPriority); c != v {
				p.warnf(n.Args[0].Pos, "%s: %d is outside %d..%d; read as %d", n.Keyword.Text, v, minRTPriority, maxRTPriority, c)
				v = c
			}
			s.RTPriority = v
		},
		role + "_priority": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			if v, ok := p.intTok(n, n.Args[0], -20, 19); ok {
				s.Nice = v
			}
		},
		// CPU numbers run from 0 to the number of CPUs online less one; a
		// bad one drops the whole set.
		role + "_cpu_affinity": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, -1) {
				return
			}
			var cpus []int
			for _, a := range n.Args {
				v, ok := p.uintTok(n, a, 0, onlineCPUs()-1)
				if !ok {
					s.CPUs = nil
					return
				}
				if !slices.Contains(cpus, v) {
					cpus = append(cpus, v)
				}
			}
			s.CPUs = cpus
		},
		role + "_rlimit_rttime": rlimit,
		role + "_rlimit_rtime":  rlimit,
		role + "_no_swap":       p.setConst(&s.NoSwap, true),
	}
}

// onlineCPUs is the number of CPUs this machine has online, which bounds
// the CPU numbers of *_cpu_affinity (keepalived: sysconf(_SC_NPROCESSORS_ONLN)).
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for r := range strings.SplitSeq(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if found {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || b < a {
			return runtime.NumCPU()
		}
		n += b - a + 1
	}
	return n
}

// rootOpsHandlers are the process keywords keepalived takes at the top
// level, outside global_defs (global_parser.c install_keyword_root).
func (p *parser) rootOpsHandlers(o *Ops) map[string]handler {
	return map[string]handler{
		"net_namespace": func(n *node) {
			if !p.noBlock(n) || !p.args(n, 1, 1) {
				return
			}
			if o.NetNamespace != "" {
				// keepalived: "Duplicate net_namespace definition".
				p.errorf(n.Args[0].Pos, "net_namespace: already set to %q", o.NetNamespace)
				return
			}
			name := n.Args[0].Text
			if name == "." || name == ".." || strings.ContainsRune(name, '/') {
				p.errorf(n.Args[0].Pos, "net_namespace: %q is not a namespace name (ip netns names it under /run/netns)", name)
				return
			}
			o.NetNamespace = name
		},
	}
}

// fifoTo reads "FIFO_NAME [username [groupname]]".
func (p *parser) fifoTo(f *FIFO) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, 3) {
			return
		}
		if f.Path != "" {
			p.errorf(n.Args[0].Pos, "%s: already set to %q", n.Keyword.Text, f.Path)
			return
		}
		f.Pos, f.Path = n.Keyword.Pos, n.Args[0].Text
		if len(n.Args) > 1 {
			f.User = n.Args[1].Text
		}
		if len(n.Args) > 2 {
			f.Group = n.Args[2].Text
		}
	}
}

// fifoScriptTo reads "STRING|QUOTED_STRING [username [groupname]]": a quoted
// command may be followed by the user and group it runs as.
func (p *parser) fifoScriptTo(f *FIFO) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, -1) {
			return
		}
		if len(f.Script) > 0 {
			p.errorf(n.Args[0].Pos, "%s: already set", n.Keyword.Text)
			return
		}
		if f.Pos == (Pos{}) {
			f.Pos = n.Keyword.Pos
		}
		args := n.Args
		if args[0].Quoted && len(args) > 1 {
			if len(args) > 3 {
				p.errorf(args[3].Pos, "%s: a quoted command is followed by at most a user and a group, got %q", n.Keyword.Text, args[3].Text)
				return
			}
			f.ScriptUser = args[1].Text
			if len(args) > 2 {
				f.ScriptGroup = args[2].Text
			}
			args = args[:1]
		}
		f.Script = p.command(&node{Keyword: n.Keyword, Args: args})
	}
}

// umaskBits are the names keepalived's umask takes (global_parser.c
// umask_handler), after the S_ of <sys/stat.h>.
var umaskBits = map[string]uint32{
	"IRUSR": 0o400, "IWUSR": 0o200, "IXUSR": 0o100, "IRWXU": 0o700,
	"IRGRP": 0o040, "IWGRP": 0o020, "IXGRP": 0o010, "IRWXG": 0o070,
	"IROTH": 0o004, "IWOTH": 0o002, "IXOTH": 0o001, "IRWXO": 0o007,
}

// umaskTo reads "umask NUMBER|BITS": a number (C notation: 0x hex, 0
// octal, else decimal) up to 0777, or bit names joined by '|', with or
// without spaces around it (IWGRP|IWOTH, IWGRP | IWOTH).
func (p *parser) umaskTo(dst **uint32) handler {
	return func(n *node) {
		if !p.noBlock(n) || !p.args(n, 1, -1) {
			return
		}
		first := n.Args[0]
		if first.Text[0] >= '0' && first.Text[0] <= '9' {
			if !p.args(n, 1, 1) {
				return
			}
			v, err := strconv.ParseUint(first.Text, 0, 32)
			if err != nil || v > 0o777 {
				p.errorf(first.Pos, "umask: invalid value %q (a number up to 0777, or bits such as IWGRP|IWOTH)", first.Text)
				return
			}
			m := uint32(v)
			*dst = &m
			return
		}
		var m uint32
		needOr := false
		for _, a := range n.Args {
			for s := a.Text; s != ""; {
				if needOr {
					if s[0] != '|' {
						p.errorf(a.Pos, "umask: expected '|' before %q", s)
						return
					}
					s, needOr = s[1:], false
					continue
				}
				bit, ok := umaskBits[s[:min(5, len(s))]]
				if !ok {
					p.errorf(a.Pos, "umask: unknown bit %q (I{R,W,X}{USR,GRP,OTH} or IRWX{U,G,O})", s)
					return
				}
				m |= bit
				s, needOr = s[min(5, len(s)):], true
			}
		}
		if !needOr {
			p.errorf(n.Args[len(n.Args)-1].Pos, "umask: a bit name must follow the last '|'")
			return
		}
		*dst = &m
	}
}

// validateFIFOs rejects two notify FIFOs at one path: keepalived.conf(5)
// "the FIFO names must all be different".
func (p *parser) validateFIFOs(o *Ops) {
	seen := map[string]string{}
	for _, f := range []struct {
		kw string
		f  *FIFO
	}{{"notify_fifo", &o.NotifyFIFO}, {"vrrp_notify_fifo", &o.VRRPNotifyFIFO}, {"lvs_notify_fifo", &o.LVSNotifyFIFO}} {
		if f.f.Path == "" {
			if len(f.f.Script) > 0 {
				// keepalived starts a FIFO's script only with its FIFO.
				p.warnf(f.f.Pos, "%s_script: no %s for it to read; not started", f.kw, f.kw)
			}
			continue
		}
		if other, ok := seen[f.f.Path]; ok {
			p.errorf(f.f.Pos, "%s: %s is also %s's FIFO; the FIFO names must all be different", f.kw, f.f.Path, other)
		}
		seen[f.f.Path] = f.kw
	}
}

// ops writes o's global_defs keywords (formatOps writes the root ones).
func (f *formatter) ops(o *Ops) {
	for _, x := range []struct {
		kw string
		f  *FIFO
	}{{"notify_fifo", &o.NotifyFIFO}, {"vrrp_notify_fifo", &o.VRRPNotifyFIFO}, {"lvs_notify_fifo", &o.LVSNotifyFIFO}} {
		if x.f.Path != "" {
			f.line(append([]string{x.kw, x.f.Path}, append(nonEmpty(x.f.User), nonEmpty(x.f.Group)...)...)...)
		}
		if len(x.f.Script) > 0 {
			f.line(append([]string{x.kw + "_script", command(x.f.Script)}, append(nonEmpty(x.f.ScriptUser), nonEmpty(x.f.ScriptGroup)...)...)...)
		}
	}
	f.only("fifo_write_vrrp_states_on_reload", o.FIFOWriteStatesOnReload)
	if o.Umask != nil {
		f.line("umask", "0"+strconv.FormatUint(uint64(*o.Umask), 8))
	}
	if o.MaxAutoPriority != 0 {
		f.num("max_auto_priority", o.MaxAutoPriority)
	}
	if o.MinAutoPriorityDelay != 0 {
		f.num("min_auto_priority_delay", int(time.Duration(o.MinAutoPriorityDelay)/time.Microsecond))
	}
	f.thread("vrrp", &o.VRRPThread)
	f.thread("bfd", &o.BFDThread)
}

func (f *formatter) thread(role string, s *ThreadSched) {
	if s.RTPriority != 0 {
		f.num(role+"_rt_priority", s.RTPriority)
	}
	if s.Nice != 0 {
		f.num(role+"_priority", s.Nice)
	}
	if len(s.CPUs) > 0 {
		words := []string{role + "_cpu_affinity"}
		for _, c := range s.CPUs {
			words = append(words, strconv.Itoa(c))
		}
		f.line(words...)
	}
	if s.RLimitRTTime != 0 {
		f.num(role+"_rlimit_rttime", int(time.Duration(s.RLimitRTTime)/time.Microsecond))
	}
	f.only(role+"_no_swap", s.NoSwap)
}
