// Package xdp is Tandem's XDP data plane: an lvs.Kernel that forwards
// LVS-DR and LVS-TUN services from an XDP program (bpf/xdp_lb.c), before
// the kernel's network stack sees the packet, as Katran does; and
// AttachDecap, the other end of its tunnels for real servers whose kernel
// cannot decapsulate (bpf/xdp_decap.c).
//
// The program looks the packet's VIP, protocol and port up in a hash map
// of services; a flow it knows (an LRU map of client address and port
// per service) goes to the real server it is on while that server holds
// slots; a new flow goes to the server of its slot in the service's
// weighted Maglev table, the table lvs.Slots builds for the nftables DR
// path too, indexed by the same jhash of the flow with the same seed, so
// that both data planes send a flow to the same server. Forwarding is the
// MAC rewrite of LVS-DR, or for TUN the encapsulation in IPIP or GUE
// toward the next hop the kernel's routing table names (bpf_fib_lookup):
// XDP_TX when the server is reached out of the interface the packet came
// in on, XDP_REDIRECT through a devmap otherwise. Everything else (not
// IPv4/IPv6 TCP/UDP to a VIP, not sent to the interface's MAC, or sent
// from it, not for an address this host holds: see watchLocals) goes on
// to the stack (XDP_PASS).
//
// A plan is applied as map updates, never by reloading the program: each
// service has two rows of slots, and its batch writes the one not in use
// before switching the service to it, so packets see its old table or its
// new one. The maps, and the links that attach the program, are pinned in
// a directory of Tandem's own on the BPF file system, so that forwarding
// goes on if Tandem dies, and a Tandem started after a crash adopts what
// the previous one programmed (Services and Dests read it back) and
// reconciles it. Close detaches the program and removes the pins.
//
// Not safe for concurrent use; the daemon serializes its callers. Its
// methods work in the network namespace of the calling thread.
package xdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// DefaultPinDir is where New pins its maps and links, in a directory per
// network namespace (xdp-<namespace inode>), so that Tandems in different
// namespaces do not meet.
const DefaultPinDir = "/sys/fs/bpf/tandem"

// Limits of the maps (bpf/xdp_lb.c).
const (
	maxSlots = 4093 // MAX_SLOTS: the largest of lvs.MaglevSizes
)

// Hash keys of svc_val.key.
const (
	keySaddrSport = 0
	keySaddr      = 1
	keyDaddr      = 2
)

// Kernel is the XDP data plane. Build it with New.
type Kernel struct {
	log    *slog.Logger
	dir    string
	extra  []string // interfaces to attach besides the real servers'
	objs   lbObjects
	route  *netlink.Handle
	links  map[uint32]link.Link // attached, by ifindex
	state  map[lvs.ServiceKey]*service
	maxSvc uint32
	maxRS  uint32
	gen    uint32 // the last generation given to a real server id
	// timeouts are lvs_timeouts (SetTimeouts).
	timeouts lvs.Timeouts
	// unforwarded: the families whose forwarding was found off (and
	// said so) when a TUN server of theirs was programmed.
	unforwarded map[lvs.AddressFamily]bool
	// stopLocals ends watchLocals.
	stopLocals func()
}

type service struct {
	lvs.Service
	id    uint32
	row   uint32
	dests map[netip.AddrPort]*dest
}

type dest struct {
	lvs.Dest
	id      uint32
	gen     uint32
	ifindex uint32
	mac     net.HardwareAddr // the real server's (DR), the next hop's (TUN)
	src     netip.Addr       // TUN: the director's address toward the server
	live    bool             // holds slots
}

// Option configures New.
type Option func(*options)

type options struct {
	dir    string
	root   string
	ifaces []string
	log    *slog.Logger
}

// WithPinDir pins maps and links in dir, on a BPF file system, instead of
// DefaultPinDir's directory for the namespace.
func WithPinDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithPinRoot pins maps and links in root's directory for the network
// namespace (xdp-<namespace inode>), root being on a BPF file system,
// instead of DefaultPinDir's. WithPinDir overrides it.
func WithPinRoot(root string) Option { return func(o *options) { o.root = root } }

// WithInterfaces attaches the program to the named interfaces too, for
// clients whose packets for a VIP arrive elsewhere than on the real
// servers' segment (the program is always attached to the interfaces
// that reach a real server, where LVS-DR expects them).
func WithInterfaces(names ...string) Option {
	return func(o *options) { o.ifaces = append(o.ifaces, names...) }
}

// SetInterfaces makes names the interfaces the program is attached to
// besides the real servers' (replacing those of WithInterfaces), at once
// if services are programmed: the daemon names the interfaces that carry
// the VIPs, at start and on every reload.
func (k *Kernel) SetInterfaces(names ...string) error {
	k.extra = slices.Clone(names)
	return k.attach()
}

// WithLogger logs attachments to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New loads the program and its maps, adopting the maps and links a
// previous Tandem pinned in the same directory (a restart after a crash),
// or replacing them if they do not fit this version's program. It
// changes no forwarding: the program is attached by the first Apply that
// programs a service, and a previous run's attachments now run this
// program with the maps they had.
func New(opts ...Option) (*Kernel, error) {
	o := options{log: slog.New(slog.DiscardHandler), root: DefaultPinDir}
	for _, f := range opts {
		f(&o)
	}
	if o.dir == "" {
		var err error
		if o.dir, err = pinDir(o.root); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, fmt.Errorf("lvs/xdp: %w (is a BPF file system mounted? mount -t bpf bpf /sys/fs/bpf)", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(o.dir, &fs); err != nil || fs.Type != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("lvs/xdp: %s is not on a BPF file system: mount one (mount -t bpf bpf /sys/fs/bpf)", o.dir)
	}
	k := &Kernel{log: o.log, dir: o.dir, extra: o.ifaces, links: map[uint32]link.Link{}, state: map[lvs.ServiceKey]*service{}}
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("lvs/xdp: %w", err)
	}
	k.maxSvc, k.maxRS = spec.Maps[lbMapServices].MaxEntries, spec.Maps[lbMapReals].MaxEntries
	copts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: o.dir}}
	err = spec.LoadAndAssign(&k.objs, copts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// An older version's maps: start afresh (their services are
		// reprogrammed by the first reconcile; their flows are lost).
		k.log.Warn("lvs/xdp: pinned maps of another version, replaced", "dir", o.dir, "err", err)
		if err := removePins(o.dir); err != nil {
			return nil, err
		}
		err = spec.LoadAndAssign(&k.objs, copts)
	}
	if err != nil {
		return nil, fmt.Errorf("lvs/xdp: load the XDP program: %w", err)
	}
	if k.route, err = netlink.NewHandle(); err != nil {
		k.objs.Close()
		return nil, fmt.Errorf("lvs/xdp: netlink: %w", err)
	}
	if k.stopLocals, err = k.watchLocals(); err != nil {
		k.close()
		return nil, err
	}
	if err := k.adopt(); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

// netnsInode names the network namespace of the calling thread: its
// inode number.
func netnsInode() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", fmt.Errorf("lvs/xdp: network namespace: %w", err)
	}
	return strconv.FormatUint(st.Ino, 10), nil
}

// pinDir is where New pins under root, for the calling thread's network
// namespace.
func pinDir(root string) (string, error) {
	ns, err := netnsInode()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "xdp-"+ns), nil
}

// Remove takes away what a Tandem that forwarded with XDP in the calling
// thread's network namespace left pinned under root (DefaultPinDir, or
// WithPinRoot's): it crashed, and this run uses another data plane or
// none. Unpinning the links detaches the program (nothing else holds
// them), unpinning the maps frees them. It reports whether there was
// anything; a root that is not there holds nothing.
func Remove(root string) (bool, error) {
	dir, err := pinDir(root)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err := removePins(dir); err != nil {
		return true, err
	}
	return true, os.Remove(dir)
}

// removePins deletes the pins of dir.
func removePins(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lvs/xdp: %w", err)
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("lvs/xdp: %w", err)
		}
	}
	return nil
}

// linkPin is where the link attaching the program to ifindex is pinned.
func (k *Kernel) linkPin(ifindex uint32) string {
	return filepath.Join(k.dir, "link_"+strconv.FormatUint(uint64(ifindex), 10))
}

// adopt reads back what the pinned maps hold, and takes over the pinned
// links, which go on to run this process's program.
func (k *Kernel) adopt() error {
	var id uint32
	var sd lbSvcDef
	defs := map[uint32]*service{}
	it := k.objs.SvcDefs.Iterate()
	for it.Next(&id, &sd) {
		s, err := decodeService(sd)
		if err != nil {
			return fmt.Errorf("lvs/xdp: pinned service %d: %w", id, err)
		}
		defs[id] = &service{Service: s, id: id, dests: map[netip.AddrPort]*dest{}}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("lvs/xdp: read services: %w", err)
	}
	var sk lbSvcKey
	var sv lbSvcVal
	it = k.objs.Services.Iterate()
	for it.Next(&sk, &sv) {
		if s := defs[sv.Id]; s != nil {
			s.row = sv.Row
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("lvs/xdp: read services: %w", err)
	}
	var rd lbRealDef
	it = k.objs.RealDefs.Iterate()
	for it.Next(&id, &rd) {
		s := defs[rd.Svc]
		if s == nil {
			continue
		}
		var rv lbRealVal
		if err := k.objs.Reals.Lookup(id, &rv); err != nil {
			return fmt.Errorf("lvs/xdp: real server %d: %w", id, err)
		}
		d := decodeDest(rd)
		s.dests[d.Addr] = &dest{Dest: d, id: id, gen: rv.Gen, ifindex: rv.Ifindex, mac: net.HardwareAddr(rv.Dmac[:]), live: rv.Live != 0}
		if rv.Tun != tunNone {
			s.dests[d.Addr].src = addrOf(rv.Family, rv.Saddr)
		}
		k.gen = max(k.gen, rv.Gen)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("lvs/xdp: read real servers: %w", err)
	}
	for _, s := range defs {
		k.state[s.Key()] = s
	}
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return fmt.Errorf("lvs/xdp: %w", err)
	}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "link_")
		if !ok {
			continue
		}
		idx, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(k.dir, e.Name()), nil)
		if err != nil {
			return fmt.Errorf("lvs/xdp: adopt link %s: %w", e.Name(), err)
		}
		if err := l.Update(k.objs.XdpLb); err != nil {
			l.Close()
			return fmt.Errorf("lvs/xdp: adopt link %s: %w", e.Name(), err)
		}
		k.links[uint32(idx)] = l
	}
	return nil
}

// Services returns the services programmed, adopted ones included.
func (k *Kernel) Services() ([]lvs.Service, error) {
	out := make([]lvs.Service, 0, len(k.state))
	for _, s := range k.state {
		out = append(out, s.Service)
	}
	slices.SortFunc(out, func(a, b lvs.Service) int { return a.ServiceKey.Compare(b.ServiceKey) })
	return out, nil
}

// Dests returns the real servers of service key, sorted by address.
func (k *Kernel) Dests(key lvs.ServiceKey) ([]lvs.Dest, error) {
	s := k.state[key]
	if s == nil {
		return nil, fmt.Errorf("lvs/xdp: no service %v", key)
	}
	out := make([]lvs.Dest, 0, len(s.dests))
	for _, d := range sortedDests(s) {
		out = append(out, d.Dest)
	}
	return out, nil
}

func sortedDests(s *service) []*dest {
	ds := slices.Collect(maps.Values(s.dests))
	slices.SortFunc(ds, func(a, b *dest) int { return a.Addr.Compare(b.Addr) })
	return ds
}

// Counters returns every service's per-real-server packets and bytes (from
// clients), summed over the CPUs. DR keeps no connection state, so
// ActiveConns and InactiveConns are 0.
func (k *Kernel) Counters() (map[lvs.ServiceKey][]lvs.DestCounters, error) {
	out := make(map[lvs.ServiceKey][]lvs.DestCounters, len(k.state))
	for key, s := range k.state {
		var cs []lvs.DestCounters
		for _, d := range sortedDests(s) {
			var per []lbCounter
			if err := k.objs.Counters.Lookup(d.id, &per); err != nil {
				return nil, fmt.Errorf("lvs/xdp: counters of %v %v: %w", key, d.Addr, err)
			}
			c := lvs.DestCounters{Addr: d.Addr}
			for _, p := range per {
				c.Packets += p.Packets
				c.Bytes += p.Bytes
			}
			cs = append(cs, c)
		}
		out[key] = cs
	}
	return out, nil
}

// Drops counts the TUN packets the program could not send on to their
// real server, summed over the CPUs.
type Drops struct {
	// TooBig: a packet that its encapsulation made bigger than the egress
	// interface's MTU; answered with ICMP "fragmentation needed" if IPv4
	// with DF, ICMPv6 "packet too big" if IPv6 (as IPVS does), else
	// dropped (IPVS fragments those).
	TooBig uint64
	// NoRoute: a TUN packet for which bpf_fib_lookup found no route, no
	// resolved next hop, or forwarding off on the interface it came in on.
	NoRoute uint64
}

// Drops reads the program's drop counters.
func (k *Kernel) Drops() (Drops, error) {
	var out Drops
	for i, dst := range []*uint64{&out.TooBig, &out.NoRoute} {
		var per []uint64
		if err := k.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return out, fmt.Errorf("lvs/xdp: drop counters: %w", err)
		}
		for _, n := range per {
			*dst += n
		}
	}
	return out, nil
}

// Apply applies plan, one batch at a time (lvs.Kernel). A batch is one
// pass of map updates that switches its service from its old pool to its
// new one at once (the slot row switch); a batch with an op this data
// plane refuses changes nothing of its service.
func (k *Kernel) Apply(ctx context.Context, plan lvs.Plan) (int, error) {
	n := 0
	for _, b := range plan {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		next, i, err := nextState(k.state[b.Key], b)
		if err != nil {
			return n, &lvs.OpError{Op: b.Ops[i], Index: n + i, Err: err}
		}
		if err := k.commit(b.Key, next); err != nil {
			return n, &lvs.OpError{Op: b.Ops[0], Index: n, Err: err}
		}
		n += len(b.Ops)
	}
	return n, nil
}

// natElsewhere names the data planes that do what this one does not.
const natElsewhere = "lb_kind NAT needs the nftables or ipvs data plane"

// check refuses what the XDP program cannot do for s.
func check(s lvs.Service) error {
	switch {
	case s.FWMark != 0:
		return errors.New("the XDP data plane matches VIP, protocol and port, not firewall marks (use the nftables or ipvs data plane)")
	case s.Protocol != lvs.TCP && s.Protocol != lvs.UDP:
		return fmt.Errorf("protocol %v: the XDP data plane forwards tcp and udp", s.Protocol)
	case s.Flags&lvs.FlagOnePacket != 0:
		return errors.New("one-packet scheduling (ops): the XDP data plane schedules flows (use the ipvs data plane)")
	case s.PersistenceEngine != "":
		return fmt.Errorf("persistence engine %s: only the ipvs data plane has persistence engines", s.PersistenceEngine)
	}
	return nil
}

func checkDest(d lvs.Dest) error {
	switch d.Method {
	case lvs.DR:
		return nil
	case lvs.NAT:
		return fmt.Errorf("real server %v: the XDP data plane forwards lb_kind DR and TUN; %s", d.Addr, natElsewhere)
	case lvs.TUN:
		if d.Tunnel.Type == lvs.TunnelGRE {
			return fmt.Errorf("real server %v: the XDP data plane encapsulates in ipip and gue, not gre (use the ipvs data plane)", d.Addr)
		}
		return nil
	}
	return fmt.Errorf("real server %v: method %v", d.Addr, d.Method)
}

// nextState is cur (nil: absent) after batch b, or the index in b of the
// op this data plane refuses. It changes neither cur nor the kernel.
func nextState(cur *service, b lvs.Batch) (*service, int, error) {
	var next *service
	if cur != nil {
		// Copies: a commit that fails leaves cur as it was.
		next = &service{Service: cur.Service, id: cur.id, row: cur.row, dests: make(map[netip.AddrPort]*dest, len(cur.dests))}
		for a, d := range cur.dests {
			cp := *d
			next.dests[a] = &cp
		}
	}
	for i, op := range b.Ops {
		switch op.Kind {
		case lvs.AddService, lvs.UpdateService:
			if err := check(op.Service); err != nil {
				return nil, i, err
			}
			if next == nil {
				next = &service{dests: map[netip.AddrPort]*dest{}}
			}
			next.Service = op.Service
			next.Method = lvs.DR
		case lvs.DelService:
			next = nil
		case lvs.AddDest, lvs.UpdateDest:
			if next == nil {
				return nil, i, errors.New("no such service")
			}
			if err := checkDest(op.Dest); err != nil {
				return nil, i, err
			}
			d := &dest{Dest: op.Dest}
			if old := next.dests[op.Dest.Addr]; old != nil {
				d.id, d.gen, d.ifindex, d.mac, d.src = old.id, old.gen, old.ifindex, old.mac, old.src
			}
			next.dests[op.Dest.Addr] = d
		case lvs.DelDest:
			if next == nil || next.dests[op.Dest.Addr] == nil {
				return nil, i, errors.New("no such real server")
			}
			delete(next.dests, op.Dest.Addr)
		default:
			return nil, i, fmt.Errorf("unknown op %v", op.Kind)
		}
	}
	return next, 0, nil
}

// commit writes the maps that turn service key from what they hold into
// next (nil: deleted), and attaches or detaches the program where the
// services now need it.
func (k *Kernel) commit(key lvs.ServiceKey, next *service) error {
	cur := k.state[key]
	sk := svcKey(key)
	if next == nil {
		if cur == nil {
			return nil
		}
		if err := k.objs.Services.Delete(sk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete service: %w", err)
		}
		delete(k.state, key)
		if err := k.retire(cur, nil); err != nil {
			return err
		}
		return k.attach()
	}
	id, fresh, err := k.allocate(cur, next)
	if err != nil {
		return err
	}
	ds := sortedDests(next)
	plain := make([]lvs.Dest, len(ds))
	for i, d := range ds {
		plain[i] = d.Dest
	}
	table, err := lvs.Slots(next.Service, plain)
	if err != nil {
		return err
	}
	if len(table) > maxSlots {
		return fmt.Errorf("%d slots: at most %d", len(table), maxSlots)
	}
	for _, d := range ds {
		d.live = false
	}
	for _, j := range table {
		ds[j].live = true
	}
	// Where each server is: its interface always (the program is
	// attached there), its MAC once it holds slots (an inhibited server
	// may be down, and not answer ARP).
	for _, d := range ds {
		if d.ifindex == 0 || d.live && d.mac == nil {
			if d.ifindex, d.mac, d.src, err = k.resolve(d.Addr.Addr(), d.live, d.Method == lvs.TUN); err != nil {
				return fmt.Errorf("real server %v: %w", d.Addr, err)
			}
		}
	}
	for _, d := range ds {
		if d.Method == lvs.TUN {
			k.checkForwarding(familyOf(d.Addr.Addr()))
		}
	}
	next.id = id
	if cur != nil {
		next.row = cur.row ^ 1
	} else {
		next.row = 2 * next.id
	}
	k.state[key] = next
	if err := k.attach(); err != nil {
		k.restore(key, cur)
		return err
	}
	if err := k.writeReals(next, ds, fresh); err != nil {
		k.restore(key, cur)
		return err
	}
	if len(table) > 0 {
		keys := make([]uint32, len(table))
		vals := make([]uint32, len(table))
		for i, j := range table {
			keys[i] = next.row*maxSlots + uint32(i)
			vals[i] = ds[j].id
		}
		if _, err := k.objs.Slots.BatchUpdate(keys, vals, nil); err != nil {
			k.restore(key, cur)
			return fmt.Errorf("slot table: %w", err)
		}
	}
	if err := k.objs.SvcDefs.Put(next.id, encodeService(next.Service)); err != nil {
		k.restore(key, cur)
		return fmt.Errorf("service definition: %w", err)
	}
	// The switch: from here on packets see the new pool.
	if err := k.objs.Services.Put(sk, svcVal(next, uint32(len(table)), k.timeouts)); err != nil {
		k.restore(key, cur)
		return fmt.Errorf("service: %w", err)
	}
	if cur != nil {
		if err := k.retire(cur, next); err != nil {
			return err
		}
	}
	return k.attach()
}

// restore puts cur back as key's state after a failed commit.
func (k *Kernel) restore(key lvs.ServiceKey, cur *service) {
	if cur == nil {
		delete(k.state, key)
		return
	}
	k.state[key] = cur
}

// allocate gives next the service id of cur, or a free one, and each of
// its new real servers a free id of a new generation, so that no flow
// entry naming a previous holder of the id matches it.
func (k *Kernel) allocate(cur, next *service) (uint32, []*dest, error) {
	usedSvc := map[uint32]bool{}
	usedRS := map[uint32]bool{}
	for _, s := range k.state {
		usedSvc[s.id] = true
		for _, d := range s.dests {
			usedRS[d.id] = true
		}
	}
	id := uint32(0)
	if cur != nil {
		id = cur.id
	} else {
		for usedSvc[id] {
			id++
		}
		if id >= k.maxSvc {
			return 0, nil, fmt.Errorf("more than %d services: the XDP data plane's limit", k.maxSvc)
		}
	}
	rid := uint32(1)
	var fresh []*dest
	for _, d := range sortedDests(next) {
		if d.id != 0 {
			continue
		}
		for usedRS[rid] {
			rid++
		}
		if rid >= k.maxRS {
			return 0, nil, fmt.Errorf("more than %d real servers: the XDP data plane's limit", k.maxRS-1)
		}
		usedRS[rid] = true
		k.gen++
		d.id, d.gen = rid, k.gen
		fresh = append(fresh, d)
	}
	return id, fresh, nil
}

// writeReals writes the forwarding entries and definitions of s's real
// servers ds, zeroing the counters of the fresh ones.
func (k *Kernel) writeReals(s *service, ds, fresh []*dest) error {
	zero := make([]lbCounter, ebpf.MustPossibleCPU())
	for _, d := range fresh {
		if err := k.objs.Counters.Put(d.id, zero); err != nil {
			return fmt.Errorf("real server %v: counters: %w", d.Addr, err)
		}
	}
	for _, d := range ds {
		var smac net.HardwareAddr
		if l, err := k.link(d.ifindex); err == nil {
			smac = l.Attrs().HardwareAddr
		}
		rv := realVal(s.id, d, smac)
		if err := k.objs.RealDefs.Put(d.id, encodeDest(s.id, d.Dest)); err != nil {
			return fmt.Errorf("real server %v: %w", d.Addr, err)
		}
		if err := k.objs.Reals.Put(d.id, rv); err != nil {
			return fmt.Errorf("real server %v: %w", d.Addr, err)
		}
	}
	return nil
}

// retire clears the entries of cur's real servers that next (nil: none)
// no longer has: the program then reschedules their flows.
func (k *Kernel) retire(cur, next *service) error {
	if next == nil {
		if err := k.objs.SvcDefs.Delete(cur.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("service definition: %w", err)
		}
	}
	for addr, d := range cur.dests {
		if next != nil && next.dests[addr] != nil && next.dests[addr].id == d.id {
			continue
		}
		if err := k.objs.Reals.Put(d.id, lbRealVal{}); err != nil {
			return fmt.Errorf("real server %v: %w", addr, err)
		}
		if err := k.objs.RealDefs.Delete(d.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("real server %v: %w", addr, err)
		}
	}
	return nil
}

func (k *Kernel) link(idx uint32) (netlink.Link, error) {
	return k.route.LinkByIndex(int(idx))
}

// resolve finds the interface that reaches real server a and, with mac,
// the MAC of the next hop, asking the kernel to resolve it when the
// neighbour table has none. DR only rewrites the MAC, so its server must
// be on a connected subnet; a TUN server may be behind routers (tun), and
// its packets leave from src, the address the kernel's route to it
// names (the program looks the route up again for each packet, with
// bpf_fib_lookup, which finds only resolved neighbours: this resolves it
// first).
func (k *Kernel) resolve(a netip.Addr, mac, tun bool) (uint32, net.HardwareAddr, netip.Addr, error) {
	var src netip.Addr
	routes, err := k.route.RouteGet(a.AsSlice())
	if err != nil {
		return 0, nil, src, fmt.Errorf("route lookup: %w", err)
	}
	if len(routes) == 0 {
		return 0, nil, src, errors.New("no route")
	}
	hop := a
	if gw := routes[0].Gw; gw != nil {
		if !tun {
			return 0, nil, src, fmt.Errorf("reached via gateway %v; lb_kind DR needs the real server on a directly connected subnet", gw)
		}
		hop, _ = netip.AddrFromSlice(gw)
		hop = hop.Unmap()
	}
	if tun {
		var ok bool
		if src, ok = netip.AddrFromSlice(routes[0].Src); !ok {
			return 0, nil, src, errors.New("the route to it names no source address")
		}
		src = src.Unmap()
	}
	idx := routes[0].LinkIndex
	if !mac {
		return uint32(idx), nil, src, nil
	}
	family := netlink.FAMILY_V4
	if hop.Is6() {
		family = netlink.FAMILY_V6
	}
	deadline := time.Now().Add(3 * time.Second)
	for probed := false; ; probed = true {
		neighs, err := k.route.NeighList(idx, family)
		if err != nil {
			return 0, nil, src, fmt.Errorf("neighbours: %w", err)
		}
		for _, n := range neighs {
			usable := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == hop && usable && len(n.HardwareAddr) == 6 {
				return uint32(idx), n.HardwareAddr, src, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, nil, src, fmt.Errorf("no MAC address: %v does not answer ARP/neighbour solicitation", hop)
		}
		if !probed {
			// A datagram to the discard port makes the kernel resolve
			// the next hop; the server's answer, if any, is an ICMP error.
			if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 9))); err == nil {
				c.Write([]byte{0})
				c.Close()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkForwarding says, once, that family f's forwarding is off in the
// namespace: the program's route lookups toward TUN servers
// (bpf_fib_lookup) are the forwarding ones, which the kernel refuses
// then, so the packets are dropped (Drops().NoRoute).
func (k *Kernel) checkForwarding(f lvs.AddressFamily) {
	p, key := "/proc/sys/net/ipv4/conf/all/forwarding", "net.ipv4.ip_forward"
	if f == lvs.IPv6 {
		p, key = "/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"
	}
	b, err := os.ReadFile(p)
	off := err == nil && strings.TrimSpace(string(b)) == "0"
	if off && !k.unforwarded[f] {
		k.log.Warn("lvs/xdp: forwarding is off: the kernel's route lookups for TUN real servers fail, and their packets are dropped; set "+key+"=1", "family", f.String())
	}
	if k.unforwarded == nil {
		k.unforwarded = map[lvs.AddressFamily]bool{}
	}
	k.unforwarded[f] = off
}

// attach makes the set of interfaces the program is attached to those its
// services need: every interface that reaches one of their real servers,
// and those of WithInterfaces; none without services.
func (k *Kernel) attach() error {
	want := map[uint32]bool{}
	egress := map[uint32]bool{}
	if len(k.state) > 0 {
		for _, s := range k.state {
			for _, d := range s.dests {
				want[d.ifindex], egress[d.ifindex] = true, true
			}
		}
		for _, name := range k.extra {
			l, err := k.route.LinkByName(name)
			if err != nil {
				return fmt.Errorf("interface %s: %w", name, err)
			}
			want[uint32(l.Attrs().Index)] = true
		}
	}
	delete(want, 0)
	for _, idx := range slices.Sorted(maps.Keys(want)) {
		if err := k.attachTo(idx, egress[idx]); err != nil {
			return err
		}
	}
	for idx, l := range k.links {
		if want[idx] {
			continue
		}
		if err := k.detach(idx, l); err != nil {
			return err
		}
	}
	return nil
}

// attachTo attaches the program to interface idx if it is not yet, native
// where the driver can, generic otherwise, and records the interface's MAC
// (and, for an egress interface, its devmap entry).
func (k *Kernel) attachTo(idx uint32, egress bool) error {
	nl, err := k.link(idx)
	if err != nil {
		return fmt.Errorf("interface %d: %w", idx, err)
	}
	name := nl.Attrs().Name
	var iv lbIfaceVal
	copy(iv.Mac[:], nl.Attrs().HardwareAddr)
	if err := k.objs.Ifaces.Put(idx, iv); err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if egress {
		if err := k.objs.TxPorts.Put(idx, idx); err != nil {
			return fmt.Errorf("interface %s: devmap: %w", name, err)
		}
	}
	if _, ok := k.links[idx]; ok {
		return nil
	}
	mode := "native"
	l, err := link.AttachXDP(link.XDPOptions{Program: k.objs.XdpLb, Interface: int(idx), Flags: link.XDPDriverMode})
	if err != nil {
		mode = "generic"
		var gerr error
		if l, gerr = link.AttachXDP(link.XDPOptions{Program: k.objs.XdpLb, Interface: int(idx), Flags: link.XDPGenericMode}); gerr != nil {
			return fmt.Errorf("attach XDP to %s: native: %v; generic: %w", name, err, gerr)
		}
	}
	if err := l.Pin(k.linkPin(idx)); err != nil {
		l.Close()
		return fmt.Errorf("pin the XDP link of %s: %w", name, err)
	}
	k.links[idx] = l
	k.log.Info("lvs/xdp: program attached", "interface", name, "mode", mode)
	if mode == "native" && nl.Type() == "veth" {
		// Measured here: without that, XDP_TX and redirected frames
		// vanish (GRO on the peer did not help).
		k.log.Warn("lvs/xdp: native XDP on a veth: the frames it forwards reach the peer only if the peer runs an XDP program", "interface", name)
	}
	return nil
}

// detach detaches the program from interface idx and forgets it.
func (k *Kernel) detach(idx uint32, l link.Link) error {
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin the XDP link of interface %d: %w", idx, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach XDP from interface %d: %w", idx, err)
	}
	delete(k.links, idx)
	if err := k.objs.Ifaces.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("interface %d: %w", idx, err)
	}
	if err := k.objs.TxPorts.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("interface %d: devmap: %w", idx, err)
	}
	k.log.Info("lvs/xdp: program detached", "ifindex", idx)
	return nil
}

// Close detaches the program from every interface and removes the pinned
// maps and links: a stopping director forwards nothing more.
func (k *Kernel) Close() error {
	if k.route == nil {
		return nil // closed already
	}
	var errs []error
	for idx, l := range k.links {
		if err := k.detach(idx, l); err != nil {
			errs = append(errs, err)
		}
	}
	k.state = map[lvs.ServiceKey]*service{}
	for _, m := range []*ebpf.Map{k.objs.Counters, k.objs.Stats, k.objs.Flows, k.objs.Ifaces, k.objs.RealDefs, k.objs.Reals, k.objs.Services, k.objs.Slots, k.objs.SvcDefs, k.objs.TxPorts} {
		if err := m.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(k.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	k.close()
	return errors.Join(errs...)
}

func (k *Kernel) close() {
	if k.stopLocals != nil {
		k.stopLocals()
		k.stopLocals = nil
	}
	for _, l := range k.links {
		l.Close()
	}
	k.objs.Close()
	if k.route != nil {
		k.route.Close()
		k.route = nil
	}
}

var _ lvs.Kernel = (*Kernel)(nil)
