package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tandem/internal/clock"
	"tandem/internal/config"
	"tandem/internal/netio"
	"tandem/internal/realtime"
)

// Kernel is what the instances need from the host: VRRP sockets, virtual
// addresses, routes and rules, and gratuitous announcements. netio does it
// for real; tests can fake it.
type Kernel interface {
	Listen(cfg netio.ConnConfig) (Conn, error)
	Addresses
	Announce(iface string, a netip.Addr) error
	// Silence makes the host answer no ARP request or neighbour
	// solicitation for exactly addrs, which it keeps (netio.Silence):
	// the addresses of draining instances (DrainVIPs).
	Silence(addrs []netip.Addr) error
	// SetPromoteSecondaries sets net.ipv4.conf.IFACE.promote_secondaries
	// and reports the value it had.
	SetPromoteSecondaries(iface string, on bool) (was bool, err error)
	// AddVMAC, DelVMAC and StaleVMACs manage use_vmac's macvlans.
	AddVMAC(v netio.VMAC) error
	DelVMAC(name string) error
	StaleVMACs(keep map[string]bool) ([]string, error)
}

// Addresses adds and removes addresses, routes and rules: an instance's
// virtual ones, and the static_* entries the daemon keeps beside them.
type Addresses interface {
	AddAddress(iface string, a *config.IPAddress) error
	DelAddress(iface string, a *config.IPAddress) error
	AddRoute(iface string, r *config.Route) error
	DelRoute(iface string, r *config.Route) error
	AddRule(r *config.Rule) error
	DelRule(r *config.Rule) error
}

// Conn is a VRRP socket (netio.Conn).
type Conn interface {
	Src() netip.Addr
	Dests() []netip.Addr
	SendTo(dst netip.Addr, data []byte) error
	Recv(buf []byte) (netio.Packet, error)
	// Pending reports whether a packet waits in the socket, not yet
	// read; it is called while another goroutine waits in Recv.
	Pending() bool
	Close() error
}

// StateChange reports an instance or sync group entering a state, for
// notify scripts, alerts, logs and metrics; or, when MasterRxLowerPri is
// set, an instance in State (MASTER) hearing an advert of lower priority
// (keepalived's MASTER_RX_LOWER_PRI event: notify_master_rx_lower_pri and
// the notify FIFOs), which changes no state.
type StateChange struct {
	Instance         *config.Instance  // nil for a group
	Group            *config.SyncGroup // nil for an instance
	State            State
	Priority         int
	At               time.Time
	MasterRxLowerPri bool
	// Reason says why the instance or group entered State.
	Reason Reason
	// PriorityChange reports that an instance's effective priority
	// changed to Priority while it stayed in State (MASTER or BACKUP),
	// for an instance with notify_priority_changes: keepalived writes
	// MASTER_PRIORITY / BACKUP_PRIORITY to its notify FIFOs then, and
	// runs no notify script (vrrp_track.c, vrrp_notify.c).
	PriorityChange bool
}

// InstanceStatus is a snapshot of one instance.
type InstanceStatus struct {
	Name              string
	State             State
	VRID              int
	Interface         string
	VMAC              string // use_vmac's interface, if any
	Priority          int
	EffectivePriority int
	MasterIP          netip.Addr
	VIPs              []netip.Prefix
	Since             time.Time
	SyncGroup         string
	AdvertsSent       uint64
	AdvertsReceived   uint64
	Dropped           map[string]uint64
	Transitions       uint64
	// LateExpiries counts the Master_Down_Timer expiries that ran late
	// and were given one more advertisement interval (holdExpiry).
	LateExpiries uint64
	// Reason is why the instance entered State (at Since).
	Reason Reason
	// DrainingUntil is when a draining instance's addresses go (zero:
	// not draining): it still holds them but no longer claims them.
	DrainingUntil time.Time
}

// Engine runs every VRRP instance of a configuration in one event loop, so
// that sync groups move their members together without locks: each
// instance's socket has a reader goroutine feeding the loop the packets it
// reads, and timers post back into it. The loop owns the instances; mu
// covers only what other goroutines read (Status, post), and the loop takes
// it only when an instance's state changes, never per packet.
type Engine struct {
	log     *slog.Logger
	kernel  Kernel
	onState func(StateChange)
	clock   clock.Clock
	fw      Firewall // nil: none (see WithFirewall)
	// beforeTakeover runs before a new master adds its addresses (see
	// WithBeforeTakeover); nil: nothing.
	beforeTakeover func(*config.Instance)
	// rt schedules the loop's thread (vrrp_rt_priority and friends) and
	// raises it when its timers run late (max_auto_priority); the loop's
	// own.
	rt *autoPriority
	// pacer spaces gratuitous announcements per interface (garp_group);
	// the loop's own.
	pacer *garpPacer
	// direct is set while the loop runs on a thread of its own that
	// waits for its sockets and timers itself (loopDirect).
	direct atomic.Pointer[direct]

	cfg    *config.Config
	insts  []*instance // guarded by mu when read outside the loop
	groups []*group
	events chan loopEvent
	// reloads carries Reload's requests into the loop.
	reloads chan reloadReq
	// done is closed when the loop stops, so that timers and readers
	// posting late do not block forever.
	done    chan struct{}
	readers sync.WaitGroup

	mu sync.Mutex // guards insts and the status fields of every instance

	// retiring are instances a reload stopped while the kernel refused to
	// remove their addresses, routes or rules: the loop retries those
	// removals until they go, or until a live instance installs one of
	// the same addresses and so takes the kernel's state over (handOver).
	retiring []*instance
	// started is set once the instances have been started (after
	// vrrp_startup_delay); the loop's.
	started bool
	// promoted holds the interfaces whose promote_secondaries the engine
	// set, with the value each had before.
	promoted map[string]bool
	// waiting are instances whose interface does not exist yet
	// (dynamic_interfaces), written by the loop under mu; waitTimer
	// retries them. early holds what the trackers reported for them
	// meanwhile (under mu), given to each when it starts.
	waiting   []*config.Instance
	waitTimer clock.Timer
	early     map[string]map[string]Event
	// silenced are the addresses the kernel was last told to keep
	// quiet about (draining instances'); the loop's.
	silenced []netip.Addr
}

// interfaceRetry is how often instances waiting for their interface try
// again.
const interfaceRetry = time.Second

// waitsForInterface reports whether ic, which failed to start with err,
// waits for its interface instead: keepalived.conf(5) dynamic_interfaces
// allows interfaces that do not exist at start. A sync group member does
// not wait (its group's coordinator counts its members at start).
func waitsForInterface(cfg *config.Config, ic *config.Instance, err error) bool {
	return err != nil && cfg.Global.DynamicInterfaces && ic.SyncGroup == "" && errors.Is(err, netio.ErrNoInterface)
}

// retryWaiting starts the waiting instances whose interface has appeared.
func (e *Engine) retryWaiting() {
	var still []*config.Instance
	for _, ic := range e.waiting {
		in, err := e.newInstance(e.cfg, ic)
		switch {
		case waitsForInterface(e.cfg, ic, err):
			still = append(still, ic)
			continue
		case err != nil:
			e.log.Error("instance not started", "instance", ic.Name, "err", err)
			continue
		}
		in.log.Info("interface present: the instance starts", "interface", ic.Interface)
		e.mu.Lock()
		e.insts = append(e.insts, in)
		early := e.early[ic.Name]
		delete(e.early, ic.Name)
		e.mu.Unlock()
		for _, ev := range early {
			e.handle(in, ev)
		}
		e.startReader(in)
		if e.started {
			e.handle(in, Start{Reason: Reason{Kind: ReasonInterfaceAppeared, Name: ic.Interface}})
		}
	}
	e.mu.Lock()
	e.waiting = still
	e.mu.Unlock()
	e.armWaiting()
}

// armWaiting schedules the next retry of the waiting instances, if any.
func (e *Engine) armWaiting() {
	if len(e.waiting) > 0 {
		e.waitTimer = e.clock.AfterFunc(interfaceRetry, func() { e.send(loopEvent{waitRetry: true}) })
	}
}

type group struct {
	cfg     *config.SyncGroup
	sg      *SyncGroup
	members []*instance
	state   State
}

// instance is one vrrp_instance: its machine, socket, timer and what it
// installed.
type instance struct {
	cfg   *config.Instance
	m     *Machine
	conn  Conn
	recv  RecvConfig
	opts  Options
	vips  []netip.Addr // advertised addresses (virtual_ipaddress only)
	ipv6  bool         // the family, fixed for the instance's life
	group *group
	index int // member index in group
	log   *slog.Logger
	ttl   uint8
	ipID  uint16
	ahSeq uint32
	timer clock.Timer
	gen   uint64
	// deadline is when the armed timer (of generation gen) fires; zero
	// if none. firedGen is the generation a direct loop last fired.
	deadline time.Time
	firedGen uint64
	// graceGen is the timer generation whose expiry was given its grace
	// for running late (holdExpiry): once per expiry.
	graceGen uint64
	// direct: a direct loop reads the socket, fd, itself.
	direct bool
	fd     int
	garp   clock.Timer
	// garpGen is bumped at each gratuitous burst series, so that the
	// ticks of an earlier mastership do nothing.
	garpGen uint64
	closed  bool

	installed bool // addresses, routes and rules are on the host
	// draining: installed, but silenced and no longer claimed, until
	// drain fires (DrainVIPs; see Engine.drain).
	draining bool
	drain    clock.Timer
	// unremoved: the last removal left some on the host; remove retries
	// it with backoff (removal).
	unremoved bool
	removal   backoff
	// lastAddrErr is the last address list mismatch logged.
	lastAddrErr string
	// lastAdvSrc is the sender of the last advert accepted.
	lastAdvSrc netip.Addr
	// stale are addresses, routes and rules a reload took out of the
	// instance's configuration while it held them, and that the kernel
	// refused to delete: retried with backoff (staleRetry) while the
	// instance is master, and by every cleanup, until they go.
	stale      []staleObject
	staleRetry backoff

	// status: written by the loop under Engine.mu (so the loop reads
	// them without it), read by Status.
	state       State
	prio        uint8
	since       time.Time
	masterIP    netip.Addr
	transitions uint64
	reason      Reason // why the last transition happened
	drainUntil  time.Time

	count counters
	// inflight counts the packets the reader has read and the loop has
	// not handled yet (see holdExpiry).
	inflight atomic.Int64
}

// counters are an instance's packet counts: the reader and the loop add
// to them and Status reads them, none taking the engine's lock.
type counters struct {
	sent, rcvd atomic.Uint64
	// lateExpiries: see InstanceStatus.LateExpiries.
	lateExpiries atomic.Uint64
	// dropped is indexed by DropReason; 0 counts errors without one.
	dropped [numDropReasons]atomic.Uint64
}

// drop counts a packet dropped for err and returns the reason's name.
func (c *counters) drop(err error) string {
	var r DropReason
	var de *DropError
	if errors.As(err, &de) {
		r = de.Reason
	}
	c.dropped[r].Add(1)
	return dropName(r)
}

func dropName(r DropReason) string {
	if r == 0 {
		return "malformed"
	}
	return r.String()
}

// DropNames lists the keys of InstanceStatus.Dropped that an instance can
// report: every DropReason's name, and "malformed" for packets dropped
// without one. Metrics register them all up front.
func DropNames() []string {
	names := []string{dropName(0)}
	for _, r := range DropReasons() {
		names = append(names, dropName(r))
	}
	return names
}

type loopEvent struct {
	inst *instance
	ev   Event
	// garp marks a gratuitous-announcement tick (of series gen, in phase
	// garpPhase) instead of an event.
	garp      bool
	gen       uint64
	garpPhase int
	// removal marks a retry of a failed removal (see remove).
	removal bool
	// stale marks a retry of the instance's stale objects (see dropStale).
	stale bool
	// packet is a packet the instance's socket received, at arrived on
	// the engine's clock (its kernel timestamp).
	packet  *netio.Packet
	arrived time.Time
	// due is when a TimerFired was due, to see how late it runs; held
	// marks one posted again by holdExpiry.
	due  time.Time
	held bool
	// paced is a gratuitous announcement whose time has come.
	paced *pacedAnnounce
	// start starts every instance (inst is nil): vrrp_startup_delay is over.
	start bool
	// waitRetry retries the instances waiting for their interface.
	waitRetry bool
	// stop and reload carry Run's end and Reload's requests into a
	// direct loop (loopDirect).
	stop   bool
	reload *reloadReq
	// drained ends the instance's drain (see Engine.drain).
	drained bool
	// call runs in the loop (Handover's requests).
	call func()
}

// Phases of a gratuitous announcement series.
const (
	garpSecond      = iota + 1 // garp_master_delay after becoming master
	garpRefresh                // every garp_master_refresh while master
	garpLowerPrio              // on hearing a lower priority advert as master
	garpLowerSecond            // garp_lower_prio_delay after that
)

// send posts an event to the loop unless the loop has stopped.
func (e *Engine) send(le loopEvent) {
	select {
	case e.events <- le:
		if d := e.direct.Load(); d != nil {
			d.poke()
		}
	case <-e.done:
	}
}

// EngineOption adjusts an Engine made by NewEngine.
type EngineOption func(*Engine)

// WithClock makes the engine take the time and its timers from c instead
// of the system clock (tests pass a clock.Fake and run in virtual time).
func WithClock(c clock.Clock) EngineOption { return func(e *Engine) { e.clock = c } }

// NewEngine prepares the instances of cfg: it opens their sockets, removes
// the virtual addresses, routes and rules a crashed earlier run may have
// left, and builds their state machines. Nothing is sent before Run.
func NewEngine(cfg *config.Config, kernel Kernel, log *slog.Logger, onState func(StateChange), opts ...EngineOption) (*Engine, error) {
	e := &Engine{log: log, kernel: kernel, onState: onState, clock: clock.Real, cfg: cfg,
		events: make(chan loopEvent, 256), reloads: make(chan reloadReq), done: make(chan struct{}), promoted: map[string]bool{}, early: map[string]map[string]Event{}}
	e.rt = newAutoPriority(&cfg.Global, log)
	e.pacer = newGarpPacer(cfg)
	for _, o := range opts {
		o(e)
	}
	e.dropStaleVMACs(cfg)
	for _, ic := range cfg.Instances {
		in, err := e.newInstance(cfg, ic)
		if waitsForInterface(cfg, ic, err) {
			e.log.Warn("interface missing: the instance waits for it (dynamic_interfaces)", "instance", ic.Name, "interface", ic.Interface)
			e.waiting = append(e.waiting, ic) // nothing else runs yet
			continue
		}
		if err != nil {
			e.closeAll()
			return nil, err
		}
		e.insts = append(e.insts, in)
	}
	e.groups = buildGroups(cfg, e.insts, nil)
	// A crashed run may have left draining addresses silenced.
	if err := kernel.Silence(nil); err != nil {
		e.log.Warn("cannot lift what an earlier run silenced (ARP for draining addresses)", "err", err)
	}
	// The firewall's table exists before any instance runs (and what a
	// crashed run left is gone); without it, no-accept cannot be kept.
	if err := e.syncFirewall(); err != nil {
		e.closeAll()
		return nil, err
	}
	return e, nil
}

// dropStaleVMACs removes the VMACs an earlier run created (they carry
// Tandem's mark) that cfg does not have: a crash left them, and nobody
// else will. Those cfg has are adopted by their instances.
func (e *Engine) dropStaleVMACs(cfg *config.Config) {
	keep := map[string]bool{}
	for _, ic := range cfg.Instances {
		if ic.VMAC != nil {
			keep[ic.VMAC.Name] = true
		}
	}
	stale, err := e.kernel.StaleVMACs(keep)
	if err != nil {
		e.log.Warn("cannot look for vmac interfaces left by an earlier run", "err", err)
	}
	for _, name := range stale {
		e.log.Info("removing vmac interface left by an earlier run", "vmac", name)
		if err := e.kernel.DelVMAC(name); err != nil {
			e.log.Warn("vmac interface not removed", "vmac", name, "err", err)
		}
	}
}

// buildGroups makes the sync group coordinators of cfg over insts,
// keeping those of keep (the groups of a running engine that a reload left
// unchanged) with their state.
func buildGroups(cfg *config.Config, insts []*instance, keep map[string]*group) []*group {
	byName := map[string]*instance{}
	for _, in := range insts {
		byName[in.cfg.Name] = in
	}
	var out []*group
	for _, gc := range cfg.SyncGroups {
		g := keep[gc.Name]
		if g == nil {
			g = &group{sg: NewSyncGroup(len(gc.Members)), state: Backup}
		}
		g.cfg, g.members = gc, nil
		for i, name := range gc.Members {
			in := byName[name]
			in.group, in.index = g, i
			g.members = append(g.members, in)
		}
		out = append(out, g)
	}
	return out
}

func authType(a *config.Auth, version int) (AuthType, [8]byte) {
	var data [8]byte
	if a == nil || version != 2 {
		return AuthNone, data
	}
	copy(data[:], a.Pass)
	if a.Type == config.AuthAH {
		return AuthAH, data
	}
	return AuthSimple, data
}

func (e *Engine) newInstance(cfg *config.Config, ic *config.Instance) (*instance, error) {
	in := &instance{cfg: ic, ipv6: ic.IPv6, log: e.log.With("instance", ic.Name, "vrid", ic.VRID), ttl: VRRPTTL}
	for _, a := range ic.VIPs {
		in.vips = append(in.vips, a.Prefix.Addr())
	}
	group := cfg.Global.VRRPMcastGroup4
	if ic.IPv6 {
		group = cfg.Global.VRRPMcastGroup6
	}
	if ic.McastDstIP.IsValid() {
		group = ic.McastDstIP
	}
	cc := netio.ConnConfig{Interface: ic.Interface, IPv6: ic.IPv6, Group: group, Src: ic.UnicastSrcIP, Exclude: in.vips}
	if v := ic.VMAC; v != nil {
		// keepalived.conf(5), use_vmac: adverts go out of the VMAC, with
		// its virtual MAC, unless vmac_xmit_base; the source address is
		// the parent's either way. use_ipvlan: out of the ipvlan, from
		// its own address (below).
		if err := e.kernel.AddVMAC(vmacSpec(ic)); err != nil {
			return nil, fmt.Errorf("vrrp_instance %s: %w", ic.Name, err)
		}
		switch {
		case v.IPVLAN != nil:
			cc.Interface = v.Name
		case !v.XmitBase:
			cc.Interface, cc.AddrFrom = v.Name, ic.Interface
		}
	}
	if !cc.Src.IsValid() {
		cc.Src = ic.McastSrcIP
	}
	if v := ic.VMAC; !cc.Src.IsValid() && v != nil && v.IPVLAN != nil {
		// keepalived's use_ipvlan ADDRESS is the source address unless
		// one is configured (vrrp_parser.c vrrp_ipvlan_handler).
		cc.Src = v.IPVLAN.Addr.Addr()
	}
	for _, p := range ic.UnicastPeers {
		cc.Peers = append(cc.Peers, p.Addr)
	}
	if len(cc.Peers) > 0 && ic.UnicastTTL > 0 {
		in.ttl = uint8(ic.UnicastTTL)
		cc.TTL = ic.UnicastTTL
	}
	at, _ := authType(ic.Auth, ic.Version)
	cc.AH = at == AuthAH
	conn, err := e.kernel.Listen(cc)
	if err != nil {
		e.dropVMAC(in)
		return nil, fmt.Errorf("vrrp_instance %s: %w", ic.Name, err)
	}
	in.conn = conn
	e.promoteSecondaries(ic)
	// A crash leaves the VIPs on the interface, and a restarted node must
	// not answer for them while BACKUP.
	in.cleanup(e.kernel)
	in.configure(ic)
	m, err := NewMachine(machineConfig(ic, conn.Src()))
	if err != nil {
		conn.Close()
		e.dropVMAC(in)
		return nil, fmt.Errorf("vrrp_instance %s: %w", ic.Name, err)
	}
	in.m = m
	return in, nil
}

// promoteSecondaries sets promote_secondaries on the interface of an
// instance that asks for it, as keepalived does at start when the
// interface does not have it yet; Run's end restores what it changed
// (keepalived vrrp_complete_init, and reset_promote_secondaries when the
// instances stop).
func (e *Engine) promoteSecondaries(ic *config.Instance) {
	// With use_vmac the addresses go on the VMAC, whose sysctls are the
	// VMAC's own; keepalived ignores promote_secondaries there.
	if !ic.PromoteSecond || ic.VMAC != nil {
		return
	}
	if _, done := e.promoted[ic.Interface]; done {
		return
	}
	was, err := e.kernel.SetPromoteSecondaries(ic.Interface, true)
	if err != nil {
		e.log.Warn("promote_secondaries not set", "instance", ic.Name, "err", err)
		return
	}
	e.promoted[ic.Interface] = was
}

// restorePromoted turns promote_secondaries off again where it was off.
func (e *Engine) restorePromoted() {
	for iface, was := range e.promoted {
		if was {
			continue
		}
		if _, err := e.kernel.SetPromoteSecondaries(iface, false); err != nil {
			e.log.Warn("promote_secondaries not restored", "interface", iface, "err", err)
		}
	}
}

// configure sets what the instance derives from its configuration and
// may take on while it runs: the receive checks, packet options and the
// advertised addresses.
func (in *instance) configure(ic *config.Instance) {
	in.vips = nil
	for _, a := range ic.VIPs {
		in.vips = append(in.vips, a.Prefix.Addr())
	}
	var peers []UnicastPeer
	for _, p := range ic.UnicastPeers {
		peers = append(peers, UnicastPeer{Addr: p.Addr, MinTTL: uint8(p.MinTTL), MaxTTL: uint8(p.MaxTTL)})
	}
	at, data := authType(ic.Auth, ic.Version)
	in.opts = Options{V3ChecksumAsV2: ic.V3ChecksumAsV2}
	in.recv = RecvConfig{
		Version: uint8(ic.Version), VRID: uint8(ic.VRID), AuthType: at, AuthData: data,
		AdvertInt: time.Duration(ic.AdvertInt), Unicast: len(peers) > 0, Peers: peers,
		CheckUnicastSrc:     ic.CheckUnicastSrc || hasTTLBounds(ic.UnicastPeers),
		OwnAddrs:            []netip.Addr{in.conn.Src()},
		LastAHSeq:           in.recv.LastAHSeq,
		OwnerIgnoresAdverts: ic.StrictMode && ic.Priority == ownerPriority,
	}
}

// machineConfig is the state machine's view of an instance's configuration.
func machineConfig(ic *config.Instance, src netip.Addr) MachineConfig {
	initial := Backup
	if ic.State == config.StateMaster {
		initial = Master
	}
	return MachineConfig{
		Version: uint8(ic.Version), VRID: uint8(ic.VRID), Priority: uint8(ic.Priority),
		AdvertInt: time.Duration(ic.AdvertInt), Preempt: ic.Preempt, PreemptDelay: time.Duration(ic.PreemptDelay),
		InitialState: initial, PrimaryAddr: src, Accept: ic.Accept, SyncGroup: ic.SyncGroup != "",
		LowerPrioNoAdvert: ic.LowerPrioNoAdv, HigherPrioSendAdvert: ic.HigherPrioSend,
	}
}

func hasTTLBounds(ps []config.UnicastPeer) bool {
	for _, p := range ps {
		if p.MinTTL > 0 || p.MaxTTL > 0 {
			return true
		}
	}
	return false
}

// Run starts every instance and runs until ctx is done; then it stops them
// as SIGTERM should: a master advertises priority 0 so that a backup takes
// over at once, and every address, route and rule added is removed.
//
// With max_auto_priority or any vrrp_rt_priority, vrrp_priority or
// vrrp_cpu_affinity the loop runs on an OS thread of its own, which it
// schedules as they say (autoPriority); the thread ends with the loop, so
// that no other goroutine ever runs on it.
func (e *Engine) Run(ctx context.Context) error {
	if !e.rt.wanted() {
		return e.loop(ctx)
	}
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		e.rt.start()
		if d := e.newDirect(); d != nil {
			e.direct.Store(d)
			defer d.close()
		}
		done <- e.loop(ctx)
	}()
	return <-done
}

func (e *Engine) loop(ctx context.Context) error {
	for _, in := range e.insts {
		e.startReader(in)
	}
	for _, in := range e.insts {
		if in.unremoved { // crash leftovers that NewEngine could not remove
			e.remove(in)
		}
	}
	// vrrp_startup_delay holds every instance in INIT for a while after
	// start, so that interfaces (bonds) that pass no traffic for a few
	// seconds after boot do not make a backup take over unheard
	// (keepalived.conf(5) vrrp_startup_delay).
	var delayed clock.Timer
	if d := time.Duration(e.cfg.Global.VRRPStartupDelay); d > 0 {
		e.log.Info("VRRP instances start after vrrp_startup_delay", "delay", d)
		delayed = e.clock.AfterFunc(d, func() { e.send(loopEvent{start: true}) })
	} else {
		e.startAll(Reason{Kind: ReasonStartup})
	}
	e.armWaiting()
	if d := e.direct.Load(); d != nil {
		return e.loopDirect(ctx, d, delayed)
	}
	stop := ctx.Done()
	for {
		select {
		case <-stop:
			return e.end(delayed)
		case r := <-e.reloads:
			r.done <- e.reload(r.cfg)
		case le := <-e.events:
			e.received(le)
		}
	}
}

// received handles an event that came through the events channel.
func (e *Engine) received(le loopEvent) {
	if le.packet != nil {
		le.inst.inflight.Add(-1) // the reader's count (holdExpiry)
	}
	e.dispatch(le)
}

// end stops the engine: its timers, then every instance (shutdown).
func (e *Engine) end(delayed clock.Timer) error {
	for _, t := range []clock.Timer{delayed, e.waitTimer} {
		if t != nil {
			t.Stop()
		}
	}
	e.shutdown()
	close(e.done)
	e.readers.Wait()
	return nil
}

// dispatch handles one event posted to the loop (or, on a direct loop,
// made by it).
func (e *Engine) dispatch(le loopEvent) {
	switch {
	case le.start:
		e.startAll(Reason{Kind: ReasonStartupDelay})
	case le.waitRetry:
		e.retryWaiting()
	case le.garp:
		e.garpTick(le.inst, le.gen, le.garpPhase)
	case le.paced != nil:
		if !le.inst.closed && le.inst.m.State() == Master {
			e.announceNow(le.inst, le.paced.iface, le.paced.addr)
		}
	case le.removal:
		if !le.inst.installed && le.inst.unremoved {
			e.remove(le.inst)
		}
		if !le.inst.unremoved {
			e.retiring = slices.DeleteFunc(e.retiring, func(r *instance) bool { return r == le.inst })
		}
	case le.call != nil:
		le.call()
	case le.inst.closed:
	case le.drained:
		if le.inst.draining {
			e.remove(le.inst)
		}
	case le.stale:
		e.dropStale(le.inst)
	case le.packet != nil:
		if ev, ok := e.accept(le.inst, *le.packet); ok {
			ev.At = le.arrived
			e.handle(le.inst, ev)
		}
	default:
		if tf, ok := le.ev.(TimerFired); ok {
			// Any timer, replaced or not, measures how late the loop
			// runs (once).
			if !le.held {
				e.rt.late(e.clock.Now().Sub(le.due))
			}
			if tf.Gen != le.inst.gen || e.holdExpiry(le) {
				return // a timer replaced since it was armed, or held
			}
		}
		e.handle(le.inst, le.ev)
	}
}

// startAll starts the instances (those already started ignore Start).
func (e *Engine) startAll(why Reason) {
	e.started = true
	for _, in := range e.insts {
		e.handle(in, Start{Reason: why})
	}
}

func (e *Engine) startReader(in *instance) {
	if e.readsDirect(in) {
		return
	}
	e.readers.Add(1)
	go func() {
		defer e.readers.Done()
		e.read(in)
	}()
}

// Track reports a tracked object's contribution to an instance's priority
// (or a fault), from the trackers; detail says how the object is, for the
// reason of a transition it causes.
func (e *Engine) Track(instance, name string, weight int, fault bool, detail string) {
	e.post(instance, TrackerChanged{Name: name, Weight: weight, Fault: fault, Detail: detail})
}

// PeerDown tells the instances whose fast_failover_bfd names session
// that it went down, peer being its neighbor; each instance's machine
// decides (PeerDown). An instance still waiting for its interface has no
// master to lose, and is not told.
func (e *Engine) PeerDown(session string, peer netip.Addr) {
	e.mu.Lock()
	var to []*instance
	for _, in := range e.insts {
		if ff := in.cfg.FastFailoverBFD; ff != nil && ff.Name == session {
			to = append(to, in)
		}
	}
	e.mu.Unlock()
	for _, in := range to {
		e.send(loopEvent{inst: in, ev: PeerDown{Name: session, Peer: peer}})
	}
}

// SetFault sets or clears a named fault of an instance (its interface down).
func (e *Engine) SetFault(instance, reason string, on bool) {
	e.post(instance, FaultChanged{Reason: reason, On: on})
}

func (e *Engine) post(name string, ev Event) {
	e.mu.Lock()
	var target *instance
	for _, in := range e.insts {
		if in.cfg.Name == name {
			target = in
		}
	}
	if target == nil && slices.ContainsFunc(e.waiting, func(ic *config.Instance) bool { return ic.Name == name }) {
		e.keepEarly(name, ev)
	}
	e.mu.Unlock()
	if target != nil {
		e.send(loopEvent{inst: target, ev: ev})
	}
}

// keepEarly holds a tracker's report for an instance that waits for its
// interface, the latest per tracker or fault reason, for when it starts.
// Called under mu.
func (e *Engine) keepEarly(name string, ev Event) {
	var key string
	switch ev := ev.(type) {
	case TrackerChanged:
		key = "tracker " + ev.Name
	case FaultChanged:
		key = "fault " + ev.Reason
	default:
		return
	}
	if e.early[name] == nil {
		e.early[name] = map[string]Event{}
	}
	e.early[name][key] = ev
}

// read hands received packets to the loop until the socket is closed. It
// touches nothing of the instance but its socket and counters: checking a
// packet needs the instance's state (the AH sequence, its siblings), which
// is the loop's.
func (e *Engine) read(in *instance) {
	buf := make([]byte, 65536)
	for {
		p, err := in.conn.Recv(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				in.log.Error("vrrp receive failed; instance no longer hears adverts", "err", err)
			}
			return
		}
		le := e.packetEvent(in, p)
		in.inflight.Add(1) // until the loop has handled it
		e.send(le)
	}
}

// packetEvent counts the drops p reports and makes its loop event, dated
// on the engine's clock as of its arrival in the kernel, however late its
// reader ran.
func (e *Engine) packetEvent(in *instance, p netio.Packet) loopEvent {
	if p.Overflow > 0 {
		in.count.dropped[ReasonSocketOverflow].Add(uint64(p.Overflow))
	}
	arrived := e.clock.Now().Add(-p.Age)
	p.Data = slices.Clone(p.Data) // the read buffer is reused
	return loopEvent{inst: in, packet: &p, arrived: arrived}
}

// expiryRecheck is how soon a held Master_Down_Timer expiry is looked at
// again.
const expiryRecheck = time.Millisecond

// holdExpiry decides whether a BACKUP's expired Master_Down_Timer waits.
//
// When the process ran late (a loaded machine), the timer's event can
// reach the loop before the adverts that arrived in time but were not
// read yet. While a packet waits in the socket or between the reader and
// the loop, the expiry is held and looked at again shortly; an advert
// among them restarts the timer as of its arrival (AdvertReceived.At), so
// the held expiry goes stale and the peer, alive all along, is not taken
// for dead. That hold ends after one more Master_Down_Interval, so that
// other traffic arriving without end cannot keep a backup from taking
// over. (A packet the reader has taken from the socket but not yet
// counted is missed; that window is a few instructions.)
//
// When nothing waits but the timer itself ran late (realtime.Stalled), the
// silence it measured includes time when this machine was not running:
// a stalled kernel or a paused VM receives nothing and, where the master
// shares the host (namespaces, a hypervisor under pressure), sends
// nothing either. The expiry then waits one more Master_Adver_Interval,
// once, for the adverts a master that is alive sends as soon as it runs
// again; a master that is really gone costs that interval more. On time,
// nothing changes: RFC 5798's timer fires as it is.
func (e *Engine) holdExpiry(le loopEvent) bool {
	in := le.inst
	if in.m.State() != Backup {
		return false
	}
	now := e.clock.Now()
	late := now.Sub(le.due)
	if late >= MasterDownInterval(in.recv.Version, in.m.MasterAdverInt(), in.m.Priority()) && le.held {
		return false
	}
	if in.inflight.Load() > 0 || in.conn.Pending() {
		le.held = true
		if e.direct.Load() != nil {
			in.deadline = le.due // a direct loop reads and looks again at once
			return true
		}
		e.clock.AfterFunc(expiryRecheck, func() { e.send(le) })
		return true
	}
	if le.held || in.graceGen == in.gen || !realtime.Stalled(late, in.m.MasterAdverInt()) {
		return false
	}
	in.graceGen = in.gen
	in.count.lateExpiries.Add(1)
	in.log.Debug("Master_Down_Timer ran late: one more advertisement interval before taking over", "late", late)
	le.held, le.due = true, now.Add(in.m.MasterAdverInt())
	if e.direct.Load() != nil {
		in.deadline = le.due
		return true
	}
	e.clock.AfterFunc(in.m.MasterAdverInt(), func() { e.send(le) })
	return true
}

// siblingVRID reports whether another instance on the same interface and
// family uses vrid: its adverts reach this socket too and are not errors.
func (e *Engine) siblingVRID(in *instance, vrid uint8) bool {
	for _, o := range e.insts {
		if o != in && o.cfg.Interface == in.cfg.Interface && o.cfg.IPv6 == in.cfg.IPv6 && o.recv.VRID == vrid {
			return true
		}
	}
	return false
}

// accept decodes and checks one received packet (RFC 3768 §7.1, RFC 5798
// §7.1), in the loop; packets that fail are counted by reason and never
// acted on.
func (e *Engine) accept(in *instance, p netio.Packet) (AdvertReceived, bool) {
	var m *Message
	var err error
	if in.ipv6 {
		m, err = ParseIPv6(p.Data, p.Src, p.Dst, p.TTL, in.opts)
	} else {
		m, err = ParseIPv4(p.Data, in.opts)
	}
	if err == nil {
		if m.VRID != in.recv.VRID && e.siblingVRID(in, m.VRID) || e.siblingOwns(in, m) {
			return AdvertReceived{}, false
		}
		err = in.recv.Check(m)
		if err == nil && m.AH != nil {
			in.recv.LastAHSeq = m.AH.Seq
		}
	}
	if err != nil {
		reason := in.count.drop(err)
		in.log.Debug("advert dropped", "from", p.Src, "reason", reason, "err", err)
		return AdvertReceived{}, false
	}
	in.count.rcvd.Add(1)
	// A differing address list is logged and counted, and the advert is
	// still processed, as keepalived does (see CheckAddrs). With
	// skip_check_adv_addr the list is compared only when the advert comes
	// from another router than the previous one (keepalived.conf(5)
	// vrrp_skip_check_adv_addr; vrrp_check_packet's check_vip_addr).
	ev := AdvertReceived{Priority: m.Priority, MaxAdvertInt: m.AdvertInt, Src: m.Src}
	sameSender := m.Src == in.lastAdvSrc
	in.lastAdvSrc = m.Src
	if in.cfg.SkipCheckAdv && sameSender {
		return ev, true
	}
	if aerr := CheckAddrs(m.Addrs, in.vips); aerr != nil {
		in.count.drop(aerr)
		if msg := aerr.Error(); msg != in.lastAddrErr {
			in.lastAddrErr = msg
			in.log.Warn("advert's address list differs from ours", "from", m.Src, "err", aerr)
		}
	}
	return ev, true
}

// handle feeds one event to an instance's machine, performs the actions,
// and lets the instance's sync group react.
func (e *Engine) handle(in *instance, ev Event) {
	before := in.m.State()
	now := e.clock.Now()
	// The status fields are written under the lock only when they change,
	// so that a steady stream of adverts takes no lock. The master is
	// recorded after the actions, so that a status showing a handover's
	// new master shows the drain it started too.
	ar, isAdvert := ev.(AdvertReceived)
	heard := isAdvert && in.m.State() == Backup && ar.Priority > 0 && in.masterIP != ar.Src
	for _, a := range in.m.Handle(now, ev) {
		e.do(in, a, now)
	}
	if heard {
		e.mu.Lock()
		in.masterIP = ar.Src
		e.mu.Unlock()
	}
	if in.draining && in.m.State() != Backup {
		// A fault or a stop ends a drain at once: the instance no
		// longer forwards.
		e.remove(in)
	}
	if st, prio := in.m.State(), in.m.Priority(); st != in.state || prio != in.prio {
		prioOnly := st == in.state
		e.mu.Lock()
		in.state, in.prio = st, prio
		e.mu.Unlock()
		if prioOnly && in.cfg.NotifyPrioChgs && (st == Master || st == Backup) {
			e.notify(StateChange{Instance: in.cfg, State: st, Priority: int(prio), At: now, PriorityChange: true})
		}
	}
	if in.m.State() != before {
		e.mu.Lock()
		in.since, in.transitions = now, in.transitions+1
		if in.m.State() == Master {
			in.masterIP = in.conn.Src()
		} else if before == Master {
			in.masterIP = netip.Addr{}
		}
		e.mu.Unlock()
	}
	g := in.group
	if g == nil {
		return
	}
	for _, f := range g.sg.Observe(in.index, in.m.Status()) {
		f.Event.Reason.Group, f.Event.Reason.Name = g.cfg.Name, g.members[f.Cause].cfg.Name
		e.handle(g.members[f.Member], f.Event)
	}
	if st := g.sg.State(); st != g.state {
		// The group moves with the member that moved it.
		e.log.Info("VRRP sync group transition", "group", g.cfg.Name, "from", g.state, "to", st, "reason", in.reason)
		g.state = st
		e.notify(StateChange{Group: g.cfg, State: st, At: now, Reason: in.reason})
	}
}

func (e *Engine) notify(sc StateChange) {
	if e.onState != nil {
		e.onState(sc)
	}
}

func (e *Engine) do(in *instance, a Action, now time.Time) {
	switch a := a.(type) {
	case SendAdvert:
		in.sendAdvert(a.Priority, a.To, e)
	case AddVIPs:
		if e.beforeTakeover != nil {
			e.beforeTakeover(in.cfg)
		}
		e.updateFirewall(in.cfg) // first: no packet to the addresses is accepted
		in.install(e.kernel)
		e.handOver(in)
		e.endDrain(in) // claimed again
	case RemoveVIPs:
		e.remove(in)
	case DrainVIPs:
		e.drain(in, now)
	case SendGratuitous:
		if !a.LowerPrio {
			in.garpGen++
			e.garpTick(in, in.garpGen, 0)
			break
		}
		// The other masters of its sync group refresh their addresses
		// too: the lower priority side's members had taken them as well
		// (vrrp.c vrrp_state_master_rx). With garp_lower_prio_repeat 0
		// nothing is sent and the series running goes on (the second
		// burst of garp_master_delay after a preemption, whose loser's
		// last advert lands here: higher_prio_send_advert).
		members := []*instance{in}
		if in.group != nil {
			members = in.group.members
		}
		for _, m := range members {
			if m.m.State() == Master && m.cfg.Garp.LowerPrioRepeat > 0 {
				m.garpGen++
				e.garpTick(m, m.garpGen, garpLowerPrio)
			}
		}
		e.notify(StateChange{Instance: in.cfg, State: Master, Priority: int(in.m.Priority()), At: now, MasterRxLowerPri: true})
	case Notify:
		// The one log line of a transition; the daemon logs none.
		in.log.Info("VRRP transition", "from", a.From, "to", a.State, "reason", a.Reason, "priority", in.m.Priority())
		e.mu.Lock()
		in.reason = a.Reason
		e.mu.Unlock()
		e.notify(StateChange{Instance: in.cfg, State: a.State, Priority: int(in.m.Priority()), At: now, Reason: a.Reason})
	case ArmTimer:
		in.gen, in.deadline = a.Gen, a.At
		if in.timer != nil {
			in.timer.Stop()
		}
		if e.direct.Load() != nil {
			break // the direct loop waits for the deadline itself
		}
		gen := a.Gen
		in.timer = e.clock.AfterFunc(a.At.Sub(now), func() { e.send(loopEvent{inst: in, ev: TimerFired{Gen: gen}, due: a.At}) })
	case CancelTimer:
		if in.timer != nil {
			in.timer.Stop()
		}
		in.gen++
		in.deadline = time.Time{}
	}
}

// drainTime is the instance's handover_drain: by default the new
// master's second gratuitous burst (garp_master_delay, assuming the peers
// are configured alike) plus a second, so that clients that missed its
// first burst have moved too.
func (in *instance) drainTime() time.Duration {
	if d := in.cfg.HandoverDrain; d != nil {
		return time.Duration(*d)
	}
	return time.Duration(in.cfg.Garp.MasterDelay) + time.Second
}

// drain performs DrainVIPs: make-before-break, the addresses stay for
// drainTime, so that what still reaches this director for them (clients
// whose ARP caches have not moved yet) is taken, but the host no longer
// answers ARP or neighbour solicitations for them, so that nothing moves
// the clients back; then they go. Without a drain time they go at once.
func (e *Engine) drain(in *instance, now time.Time) {
	d := in.drainTime()
	if d <= 0 || !in.installed {
		e.remove(in)
		return
	}
	in.draining = true
	e.silence()
	if in.drain != nil {
		in.drain.Stop()
	}
	in.drain = e.clock.AfterFunc(d, func() { e.send(loopEvent{inst: in, drained: true}) })
	e.mu.Lock()
	in.drainUntil = now.Add(d)
	e.mu.Unlock()
	in.log.Info("virtual addresses draining: still forwarded, no longer announced", "for", d)
}

// endDrain ends the instance's drain, if any: its addresses were claimed
// again or removed.
func (e *Engine) endDrain(in *instance) {
	if !in.draining {
		return
	}
	in.draining = false
	if in.drain != nil {
		in.drain.Stop()
	}
	e.mu.Lock()
	in.drainUntil = time.Time{}
	e.mu.Unlock()
	e.silence()
}

// silence tells the kernel which addresses to keep quiet about: those of
// the draining instances.
func (e *Engine) silence() {
	var addrs []netip.Addr
	for _, in := range e.insts {
		if in.draining {
			for _, a := range in.addresses() {
				addrs = append(addrs, a.Prefix.Addr())
			}
		}
	}
	if slices.Equal(addrs, e.silenced) {
		return
	}
	if err := e.kernel.Silence(addrs); err != nil {
		e.log.Warn("ARP / neighbour answers for draining addresses not silenced", "addrs", addrs, "err", err)
		return
	}
	e.silenced = addrs
}

func (in *instance) sendAdvert(prio uint8, to netip.Addr, e *Engine) {
	p := &Packet{Version: in.recv.Version, Type: TypeAdvertisement, VRID: in.recv.VRID, Priority: prio,
		AuthType: in.recv.AuthType, AdvertInt: in.recv.AdvertInt, Addrs: in.vips}
	if p.AuthType == AuthSimple {
		p.AuthData = in.recv.AuthData
	}
	for _, dst := range in.conn.Dests() {
		if to.IsValid() && dst != to {
			continue
		}
		var b []byte
		var err error
		if in.cfg.IPv6 {
			b, err = p.Marshal(in.conn.Src(), dst, in.opts)
		} else {
			// keepalived never sends IP ID 0 (the kernel would rewrite it
			// under AH's ICV).
			if in.ipID++; in.ipID == 0 {
				in.ipID = 1
			}
			var ah *AHParams
			if p.AuthType == AuthAH {
				in.ahSeq++
				ah = &AHParams{Key: in.recv.AuthData, Seq: in.ahSeq, Unicast: in.recv.Unicast}
			}
			b, err = p.MarshalIPv4(IPv4Header{Src: in.conn.Src(), Dst: dst, ID: in.ipID, TTL: in.ttl}, ah, in.opts)
		}
		if err == nil {
			err = in.conn.SendTo(dst, b)
		}
		if err != nil {
			in.log.Warn("advert not sent", "to", dst, "err", err)
			continue
		}
		in.count.sent.Add(1)
	}
}

// install adds the instance's addresses, routes and rules.
func (in *instance) install(k Kernel) {
	again := in.installed // claimed again while draining
	in.installed = true
	in.unremoved = false
	in.removal.reset()
	for _, a := range in.addresses() {
		if err := k.AddAddress(in.cfg.Interface, in.placed(a)); err != nil {
			in.log.Error("virtual address not added", "err", err)
		}
	}
	for _, r := range in.cfg.Routes {
		if err := k.AddRoute(in.cfg.Interface, r); err != nil {
			in.log.Error("virtual route not added", "err", err)
		}
	}
	if again {
		// The rules are there: a rule without a priority added again
		// would be there twice (the kernel gives each add the next
		// free priority, so NLM_F_EXCL does not see the first copy),
		// and one removal would leave the other behind.
		return
	}
	for _, r := range in.cfg.Rules {
		if err := k.AddRule(r); err != nil {
			in.log.Error("virtual rule not added", "err", err)
		}
	}
}

// Retries of a removal the kernel refused (see remove).
const (
	removeRetryFirst = 100 * time.Millisecond
	removeRetryMax   = 5 * time.Second
	// stopRetryFor bounds the retries of a stop: an operator stopping
	// Tandem expects its VIPs gone, but also the process, so that a
	// restart or a service manager's timeout is not held up; what is
	// still there then is named in the log, to remove by hand.
	stopRetryFor = 10 * time.Second
)

// remove takes the instance's addresses, routes and rules off the host,
// which ends a drain (stops, faults and reloads remove through here too).
// What the kernel refuses to remove (say, no descriptor left for a
// netlink socket) is retried from the loop with backoff until it goes:
// a VIP left on a backup keeps answering for the master.
func (e *Engine) remove(in *instance) {
	ok := in.cleanup(e.kernel)
	e.updateFirewall() // after the addresses are gone
	e.endDrain(in)
	if ok {
		in.removal.reset()
		return
	}
	e.retryLater(&in.removal, in, "virtual addresses, routes or rules", loopEvent{inst: in, removal: true})
}

// backoff paces the retries of a removal the kernel refused: the waits
// double from removeRetryFirst up to removeRetryMax.
type backoff struct {
	wait  time.Duration
	timer clock.Timer
}

// reset stops the retries (the removal succeeded or is moot).
func (b *backoff) reset() {
	b.wait = 0
	if b.timer != nil {
		b.timer.Stop()
	}
}

// retryLater arms b's next retry of in's removal of what, which posts le
// to the loop.
func (e *Engine) retryLater(b *backoff, in *instance, what string, le loopEvent) {
	b.wait = min(max(2*b.wait, removeRetryFirst), removeRetryMax)
	in.log.Error(what+" not removed; retrying", "after", b.wait)
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = e.clock.AfterFunc(b.wait, func() { e.send(le) })
}

// handOver ends the removal retries of retiring instances that share an
// address with in, which has just installed it: the address is in's now,
// and in's own removal takes it off when in stops being master.
func (e *Engine) handOver(in *instance) {
	e.retiring = slices.DeleteFunc(e.retiring, func(r *instance) bool {
		if !slices.ContainsFunc(r.addresses(), func(a *config.IPAddress) bool {
			return slices.ContainsFunc(in.addresses(), func(b *config.IPAddress) bool { return a.Prefix == b.Prefix && r.devOf(a) == in.devOf(b) })
		}) {
			return false
		}
		r.unremoved = false
		r.removal.reset()
		return true
	})
}

// cleanup removes the instance's rules, routes and addresses (ones that
// are not there are not errors) and reports whether all went.
func (in *instance) cleanup(k Kernel) bool {
	in.installed, in.unremoved = false, false
	if !in.deleteStale(k) {
		in.unremoved = true
	}
	for _, r := range in.cfg.Rules {
		if err := k.DelRule(r); err != nil {
			in.unremoved = true
			in.log.Warn("virtual rule not removed", "err", err)
		}
	}
	for _, r := range in.cfg.Routes {
		if err := k.DelRoute(in.cfg.Interface, r); err != nil {
			in.unremoved = true
			in.log.Warn("virtual route not removed", "err", err)
		}
	}
	for _, a := range in.addresses() {
		if err := k.DelAddress(in.cfg.Interface, in.placed(a)); err != nil {
			in.unremoved = true
			in.log.Warn("virtual address not removed", "err", err)
		}
	}
	return !in.unremoved
}

// garpTick sends one burst of gratuitous ARPs / unsolicited NAs and
// schedules the next, with keepalived's timing: garp_master_repeat on
// becoming master, as many again garp_master_delay later, then
// garp_master_refresh_repeat every garp_master_refresh (0 = never). On
// hearing a lower priority advert a master sends garp_lower_prio_repeat,
// and as many again garp_lower_prio_delay later (vrrp.c
// vrrp_state_master_rx, vrrp_lower_prio_gratuitous_arp_thread); a repeat
// of 0 sends none.
func (e *Engine) garpTick(in *instance, gen uint64, phase int) {
	if gen != in.garpGen || in.closed || in.m.State() != Master {
		return
	}
	g := in.cfg.Garp
	repeat := g.MasterRepeat
	switch phase {
	case garpRefresh:
		repeat = g.MasterRefreshRepeat
	case garpLowerPrio, garpLowerSecond:
		repeat = g.LowerPrioRepeat
	}
	e.announce(in, in.addresses(), repeat)
	next, after := garpRefresh, time.Duration(g.MasterRefresh)
	switch {
	case phase == 0 && g.MasterDelay > 0:
		next, after = garpSecond, time.Duration(g.MasterDelay)
	case phase == garpLowerPrio && g.LowerPrioDelay > 0 && g.LowerPrioRepeat > 0:
		next, after = garpLowerSecond, time.Duration(g.LowerPrioDelay)
	}
	if after <= 0 {
		return
	}
	if in.garp != nil {
		in.garp.Stop()
	}
	in.garp = e.clock.AfterFunc(after, func() { e.send(loopEvent{inst: in, garp: true, gen: gen, garpPhase: next}) })
}

// announce sends repeat gratuitous ARPs / unsolicited NAs for each of
// addrs, now, or later where the interface's pacing (garpPacer) says so;
// one sent later goes only if the instance is still master then.
func (e *Engine) announce(in *instance, addrs []*config.IPAddress, repeat int) {
	now := e.clock.Now()
	for range repeat {
		for _, a := range addrs {
			iface := in.devOf(a)
			addr := a.Prefix.Addr()
			if at := e.pacer.slot(iface, addr, now); at.After(now) {
				e.clock.AfterFunc(at.Sub(now), func() { e.send(loopEvent{inst: in, paced: &pacedAnnounce{iface, addr}}) })
				continue
			}
			e.announceNow(in, iface, addr)
		}
	}
}

// placed is a as the kernel calls take it. With use_vmac, keepalived puts
// on the VMAC every address of the instance's family whose dev is unset or
// the instance's interface, and the others on their dev or the instance's
// interface (vrrp.c, vrrp_complete_instance).
func (in *instance) placed(a *config.IPAddress) *config.IPAddress {
	v := in.cfg.VMAC
	if v == nil || a.Dev != "" && a.Dev != in.cfg.Interface {
		return a
	}
	c := *a
	c.Dev = in.cfg.Interface
	if a.Prefix.Addr().Is6() == in.cfg.IPv6 {
		c.Dev = v.Name
	}
	return &c
}

// devOf is the interface a goes on.
func (in *instance) devOf(a *config.IPAddress) string {
	if d := in.placed(a).Dev; d != "" {
		return d
	}
	return in.cfg.Interface
}

// vmacName is the instance's use_vmac interface ("" without one).
func (in *instance) vmacName() string {
	if in.cfg.VMAC == nil {
		return ""
	}
	return in.cfg.VMAC.Name
}

// vmacSpec is the macvlan of the instance's use_vmac.
func vmacSpec(ic *config.Instance) netio.VMAC {
	v := netio.VMAC{Name: ic.VMAC.Name, Parent: ic.Interface, MAC: ic.VMAC.MAC, Owner: ic.Name, IPv6: ic.IPv6, SendsFrom: !ic.VMAC.XmitBase}
	if iv := ic.VMAC.IPVLAN; iv != nil {
		v.IPVLAN, v.IPVLANMode, v.Addr = true, iv.Mode, iv.Addr
	}
	// keepalived keeps IPv6 on an IPv4 instance's VMAC when it has IPv6
	// excluded addresses (VRRP_FLAG_EVIP_OTHER_FAMILY).
	for _, a := range ic.ExcludedVIPs {
		if a.Prefix.Addr().Is6() {
			v.KeepIPv6 = true
		}
	}
	return v
}

// pacedAnnounce is an announcement its interface's pacing delayed.
type pacedAnnounce struct {
	iface string
	addr  netip.Addr
}

func (e *Engine) announceNow(in *instance, iface string, addr netip.Addr) {
	if err := e.kernel.Announce(iface, addr); err != nil {
		in.log.Warn("gratuitous announcement not sent", "addr", addr, "err", err)
	}
}

// addresses are every address the instance installs.
func (in *instance) addresses() []*config.IPAddress {
	return append(append([]*config.IPAddress(nil), in.cfg.VIPs...), in.cfg.ExcludedVIPs...)
}

func (e *Engine) shutdown() {
	now := e.clock.Now()
	for _, in := range e.insts {
		for _, a := range in.m.Handle(now, Shutdown{}) {
			e.do(in, a, now)
		}
		if in.installed {
			e.remove(in)
		}
	}
	e.closeAll()
	e.finishRemovals()
	e.restorePromoted()
}

// finishRemovals retries, for at most stopRetryFor, what the stop could
// not remove.
func (e *Engine) finishRemovals() {
	deadline := e.clock.Now().Add(stopRetryFor)
	for wait := removeRetryFirst; ; wait = min(2*wait, removeRetryMax) {
		var left []*instance
		for _, in := range slices.Concat(e.insts, e.retiring) {
			if in.unremoved {
				left = append(left, in)
			}
		}
		if len(left) == 0 {
			return
		}
		if e.clock.Now().Add(wait).After(deadline) {
			for _, in := range left {
				in.log.Error("virtual addresses, routes or rules left on the host: remove them by hand", "tried_for", stopRetryFor, "vips", in.vips)
			}
			return
		}
		clock.Sleep(e.clock, wait)
		for _, in := range left {
			in.cleanup(e.kernel)
		}
		e.updateFirewall()
	}
}

// Close releases the sockets of an engine that will not Run.
func (e *Engine) Close() {
	e.closeAll()
	e.restorePromoted()
}

func (e *Engine) closeAll() {
	for _, in := range e.insts {
		e.closeInstance(in)
	}
}

// closeInstance closes the instance and removes its VMAC, whose
// addresses go with it.
func (e *Engine) closeInstance(in *instance) {
	in.close()
	e.dropVMAC(in)
}

// dropVMAC removes the instance's VMAC, if it has one (keepalived removes
// its VMACs at exit and when a reload drops them).
func (e *Engine) dropVMAC(in *instance) {
	if name := in.vmacName(); name != "" {
		logErr(in, "vmac interface not removed", e.kernel.DelVMAC(name))
	}
}

// close stops the instance's timers and closes its socket, which ends its
// reader; events still queued for it are ignored.
func (in *instance) close() {
	in.closed = true
	for _, t := range []clock.Timer{in.timer, in.drain} {
		if t != nil {
			t.Stop()
		}
	}
	if in.garp != nil {
		in.garp.Stop()
	}
	in.staleRetry.reset()
	in.conn.Close()
}

// Status returns a snapshot of every instance.
func (e *Engine) Status() []InstanceStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]InstanceStatus, 0, len(e.insts))
	for _, in := range e.insts {
		st := InstanceStatus{
			Name: in.cfg.Name, State: in.state, VRID: in.cfg.VRID, Interface: in.cfg.Interface, VMAC: in.vmacName(),
			Priority: in.cfg.Priority, EffectivePriority: int(in.prio), MasterIP: in.masterIP,
			Since: in.since, SyncGroup: in.cfg.SyncGroup, AdvertsSent: in.count.sent.Load(), AdvertsReceived: in.count.rcvd.Load(),
			Transitions: in.transitions, Reason: in.reason, Dropped: map[string]uint64{}, DrainingUntil: in.drainUntil,
			LateExpiries: in.count.lateExpiries.Load(),
		}
		for _, a := range in.cfg.VIPs {
			st.VIPs = append(st.VIPs, a.Prefix)
		}
		for r := range in.count.dropped {
			if n := in.count.dropped[r].Load(); n > 0 {
				st.Dropped[dropName(DropReason(r))] = n
			}
		}
		out = append(out, st)
	}
	return out
}
