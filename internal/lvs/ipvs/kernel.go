package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// ErrUnavailable is returned by New on a kernel without IPVS. Its message is
// the one line an operator needs.
var ErrUnavailable = errors.New("kernel IPVS is not available (no /proc/net/ip_vs, no IPVS generic netlink family): load the ip_vs module (modprobe ip_vs) or use --dataplane nft")

var _ lvs.Kernel = (*Kernel)(nil)

// Kernel is an lvs.Kernel on kernel IPVS, in the network namespace of the
// thread that called New. It is not safe for concurrent use; the daemon's
// reconcile loop is its only caller.
type Kernel struct {
	c     ipvs.Client
	conn  io.Closer // the client's netlink socket
	nl    extras    // Tandem's own socket, for what the client cannot send (genl.go)
	owned *stateFile
	// origTimeouts are IPVS's connection timeouts as they were before
	// SetTimeouts first changed them; nil while unchanged.
	origTimeouts *ipvs.Config
}

// Option configures New.
type Option func(*options)

type options struct {
	stateFile string
}

// WithStateFile records the services this Kernel creates in path instead
// of DefaultStateFile; "" keeps the record in memory only (a restarted
// process then owns nothing it did not create itself).
func WithStateFile(path string) Option { return func(o *options) { o.stateFile = path } }

// New opens IPVS's generic netlink family in the calling thread's network
// namespace and loads the record of the services a previous run created.
// It changes nothing in the kernel. On a kernel without IPVS the error
// wraps ErrUnavailable.
func New(opts ...Option) (*Kernel, error) {
	o := options{stateFile: DefaultStateFile}
	for _, f := range opts {
		f(&o)
	}
	c, err := ipvs.New()
	if errors.Is(err, os.ErrNotExist) {
		// The generic netlink controller answers ENOENT for a family
		// nobody registered: ip_vs is neither built in nor loaded.
		return nil, fmt.Errorf("lvs/ipvs: %w", ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("lvs/ipvs: open generic netlink: %w", err)
	}
	conn, _ := c.(io.Closer) // the Linux client has Close; the interface does not say so
	k := &Kernel{c: c, conn: conn}
	nl, err := dialGenl()
	if err != nil {
		k.closeConn()
		return nil, fmt.Errorf("lvs/ipvs: open generic netlink: %w", err)
	}
	k.nl = nl
	// Every IPVS command, reads included, needs CAP_NET_ADMIN
	// (GENL_ADMIN_PERM); fail at start rather than at the first reconcile.
	if _, err := c.Info(); err != nil {
		k.closeConn()
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("lvs/ipvs: IPVS needs CAP_NET_ADMIN (run as root): %w", err)
		}
		return nil, fmt.Errorf("lvs/ipvs: read IPVS info: %w", err)
	}
	if k.owned, err = loadStateFile(o.stateFile); err != nil {
		k.closeConn()
		return nil, err
	}
	return k, nil
}

func (k *Kernel) closeConn() {
	if k.conn != nil {
		k.conn.Close()
	}
	if k.nl != nil {
		k.nl.close()
	}
}

// Owns reports whether this Kernel, or a previous process with the same
// state file, created service key. It is the owns predicate for
// lvs.NewReconciler: with it, a process restarted after a crash removes the
// services its predecessor made and no longer wants, and nothing else.
func (k *Kernel) Owns(key lvs.ServiceKey) bool { return k.owned.has(key) }

// Services reads every IPVS service of the namespace, in lvs.ServiceKey
// order, including services Tandem did not create. Recorded services that
// are gone from the kernel (deleted by hand) are forgotten, so that a
// service later made by hand under the same key is not taken for ours.
func (k *Kernel) Services() ([]lvs.Service, error) {
	svcs, err := k.c.Services()
	// cloudflare/ipvs reports an empty table as os.ErrNotExist; New has
	// already established that IPVS itself exists.
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lvs/ipvs: list services: %w", err)
	}
	// cloudflare/ipvs does not read the persistence engine: a dump of
	// Tandem's own does.
	pes, err := k.persistenceEngines()
	if err != nil {
		return nil, err
	}
	out := make([]lvs.Service, 0, len(svcs))
	present := make(map[lvs.ServiceKey]bool, len(svcs))
	for _, s := range svcs {
		svc := fromService(s.Service)
		svc.PersistenceEngine = pes[svc.Key()]
		out = append(out, svc)
		present[svc.Key()] = true
	}
	if err := k.owned.retain(present); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b lvs.Service) int { return a.Key().Compare(b.Key()) })
	return out, nil
}

// Dests reads the real servers of service key, sorted by address.
func (k *Kernel) Dests(key lvs.ServiceKey) ([]lvs.Dest, error) {
	ds, err := k.destinations(key)
	if err != nil {
		return nil, err
	}
	out := make([]lvs.Dest, 0, len(ds))
	for _, d := range ds {
		out = append(out, fromDest(d.Destination))
	}
	slices.SortFunc(out, func(a, b lvs.Dest) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

func (k *Kernel) destinations(key lvs.ServiceKey) ([]ipvs.DestinationExtended, error) {
	ds, err := k.c.Destinations(toService(lvs.Service{ServiceKey: key}))
	// As for services, an empty list comes back as os.ErrNotExist.
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lvs/ipvs: %v: list real servers: %w", key, err)
	}
	return ds, nil
}

// Apply implements lvs.Kernel. IPVS has no transactions: each op is one
// netlink request, sent in the plan's order (which the reconciler chooses
// so that no pool drains to empty on the way), and Apply stops at the
// first one the kernel refuses. ctx is checked between ops.
func (k *Kernel) Apply(ctx context.Context, plan lvs.Plan) (int, error) {
	n := 0
	for _, b := range plan {
		for _, op := range b.Ops {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if err := k.apply(op); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// apply performs one operation. A service is recorded as Tandem's before
// it is created, so that a crash between the two leaves at worst a record
// of a service that does not exist (forgotten by the next Services), never
// a service nobody owns.
func (k *Kernel) apply(op lvs.Op) error {
	svc := toService(op.Service)
	key := op.Service.Key()
	var err error
	switch op.Kind {
	case lvs.AddService:
		var added bool
		if added, err = k.owned.add(key); err != nil {
			return err
		}
		if err = k.createService(op.Service, svc); err != nil && added {
			if ferr := k.owned.remove(key); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
	case lvs.UpdateService:
		if op.Service.PersistenceEngine != "" {
			err = k.nl.putService(cmdSetService, op.Service)
		} else {
			// Without IPVS_SVC_ATTR_PE_NAME the kernel drops an engine
			// the service had (ip_vs_ctl.c ip_vs_edit_service).
			err = k.c.UpdateService(svc)
		}
	case lvs.DelService:
		err = k.c.RemoveService(svc)
		// ESRCH: already gone, which is what was asked.
		if err == nil || errors.Is(err, unix.ESRCH) {
			err = k.owned.remove(key)
		}
	case lvs.AddDest:
		err = k.c.CreateDestination(svc, toDest(op.Dest))
	case lvs.UpdateDest:
		err = k.c.UpdateDestination(svc, toDest(op.Dest))
	case lvs.DelDest:
		err = k.c.RemoveDestination(svc, toDest(op.Dest))
	default:
		return fmt.Errorf("lvs/ipvs: unknown operation %v", op.Kind)
	}
	if err == nil {
		return nil
	}
	// The kernel answers ENOENT when ip_vs_<name> cannot be found
	// (ip_vs_sched.c: ip_vs_scheduler_get), or ip_vs_pe_<name>
	// (ip_vs_pe.c: ip_vs_pe_getbyname), which is otherwise a puzzle.
	if (op.Kind == lvs.AddService || op.Kind == lvs.UpdateService) && isMissingPE(op.Service, err) {
		return fmt.Errorf("lvs/ipvs: %v: scheduler %q or persistence engine %q is not available in this kernel (modules ip_vs_%s, ip_vs_pe_%s): %w",
			key, op.Service.Scheduler, op.Service.PersistenceEngine, op.Service.Scheduler, op.Service.PersistenceEngine, err)
	}
	if (op.Kind == lvs.AddService || op.Kind == lvs.UpdateService) && errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("lvs/ipvs: %v: scheduler %q is not available in this kernel (module ip_vs_%s): %w",
			key, op.Service.Scheduler, op.Service.Scheduler, err)
	}
	return fmt.Errorf("lvs/ipvs: %v: %w", op, err)
}

// DestStats are a real server's counters as IPVS keeps them (ipvsadm -Ln
// --stats).
type DestStats struct {
	Addr netip.AddrPort
	// ActiveConns are connections in ESTABLISHED (TCP) state, InactiveConns
	// the others (SYN, FIN, TIME_WAIT; UDP), PersistentConns the persistence
	// templates pointing at the server: ipvsadm's ActiveConn, InActConn and
	// PersistConn.
	ActiveConns, InactiveConns, PersistentConns uint32
	// Conns counts connections scheduled to the server since it was added
	// (or since it left IPVS's trash list: a real server removed and added
	// back within a few minutes keeps its counters).
	Conns uint64
	// Packets and Bytes count traffic from clients to the server;
	// OutPackets and OutBytes replies through the director (NAT only: in
	// DR and TUN replies bypass it).
	Packets, Bytes       uint64
	OutPackets, OutBytes uint64
}

// Stats returns the counters of service key's real servers, sorted by
// address.
func (k *Kernel) Stats(key lvs.ServiceKey) ([]DestStats, error) {
	ds, err := k.destinations(key)
	if err != nil {
		return nil, err
	}
	out := make([]DestStats, 0, len(ds))
	for _, d := range ds {
		// The 64-bit counters (IPVS_DEST_ATTR_STATS64, Linux 4.1+) do
		// not wrap; older kernels send only the 32-bit ones.
		st := d.Stats64
		if st == (ipvs.Stats{}) {
			st = d.Stats
		}
		out = append(out, DestStats{
			Addr:            fromDest(d.Destination).Addr,
			ActiveConns:     d.ActiveConnections,
			InactiveConns:   d.InactiveConnections,
			PersistentConns: d.PersistentConnections,
			Conns:           st.Connections,
			Packets:         st.IncomingPackets,
			Bytes:           st.IncomingBytes,
			OutPackets:      st.OutgoingPackets,
			OutBytes:        st.OutgoingBytes,
		})
	}
	slices.SortFunc(out, func(a, b DestStats) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// Counters implements lvs.Kernel: Stats of every service, one netlink
// dump per service (IPVS lists real servers one service at a time).
func (k *Kernel) Counters() (map[lvs.ServiceKey][]lvs.DestCounters, error) {
	svcs, err := k.Services()
	if err != nil {
		return nil, err
	}
	out := make(map[lvs.ServiceKey][]lvs.DestCounters, len(svcs))
	for _, s := range svcs {
		ds, err := k.Stats(s.Key())
		if err != nil {
			return nil, err
		}
		cs := make([]lvs.DestCounters, len(ds))
		for i, d := range ds {
			cs[i] = lvs.DestCounters{Addr: d.Addr, ActiveConns: uint64(d.ActiveConns), InactiveConns: uint64(d.InactiveConns),
				Packets: d.Packets, Bytes: d.Bytes}
		}
		out[s.Key()] = cs
	}
	return out, nil
}

// Flush deletes every service this Kernel owns (see Owns), with their real
// servers, and leaves all others alone.
func (k *Kernel) Flush() error {
	svcs, err := k.Services()
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range svcs {
		if k.Owns(s.Key()) {
			errs = append(errs, k.apply(lvs.Op{Kind: lvs.DelService, Service: s}))
		}
	}
	return errors.Join(errs...)
}

// Close removes the services this Kernel owns (Flush), as a stopping
// director must (DESIGN.md, principle 4), puts back the connection
// timeouts SetTimeouts changed, and closes the netlink sockets.
func (k *Kernel) Close() error {
	err := errors.Join(k.Flush(), k.SetTimeouts(lvs.Timeouts{}))
	k.closeConn()
	return err
}

// FlushAll deletes every service of the namespace with its real servers,
// Tandem's and everyone else's (IPVS_CMD_FLUSH, ipvsadm -C): keepalived's
// lvs_flush and lvs_flush_onstop, which ask for exactly that
// (keepalived.conf(5) global_defs). Tandem forgets the services it had.
func (k *Kernel) FlushAll() error {
	if err := k.nl.flush(); err != nil {
		return fmt.Errorf("lvs/ipvs: flush: %w", err)
	}
	return k.owned.retain(nil)
}

// SetTimeouts sets IPVS's connection timeouts (ipvsadm --set; global to
// the namespace): an established TCP connection's, a TCP connection's
// after its FIN, and a UDP flow's. A zero timeout is the one IPVS had
// before SetTimeouts first changed any, so SetTimeouts(lvs.Timeouts{})
// puts them all back, as keepalived does on a reload without
// lvs_timeouts and at exit (ipvswrapper.c ipvs_set_timeouts, libipvs.c
// ipvs_set_timeout). IPVS counts in whole seconds.
func (k *Kernel) SetTimeouts(t lvs.Timeouts) error {
	if k.origTimeouts == nil {
		if t == (lvs.Timeouts{}) {
			return nil // nothing changed, nothing to put back
		}
		orig, err := k.c.Config()
		if err != nil {
			return fmt.Errorf("lvs/ipvs: read timeouts: %w", err)
		}
		k.origTimeouts = &orig
	}
	secs := func(d time.Duration, orig uint32) uint32 {
		if d <= 0 {
			return orig
		}
		return uint32(max(d/time.Second, 1))
	}
	o := k.origTimeouts
	c := ipvs.Config{TCPTimeout: secs(t.TCP, o.TCPTimeout), TCPFinTimeout: secs(t.TCPFin, o.TCPFinTimeout), UDPTimeout: secs(t.UDP, o.UDPTimeout)}
	if err := k.c.SetConfig(c); err != nil {
		return fmt.Errorf("lvs/ipvs: set timeouts tcp %ds tcpfin %ds udp %ds: %w", c.TCPTimeout, c.TCPFinTimeout, c.UDPTimeout, err)
	}
	return nil
}

// Timeouts reads IPVS's connection timeouts.
func (k *Kernel) Timeouts() (lvs.Timeouts, error) {
	c, err := k.c.Config()
	if err != nil {
		return lvs.Timeouts{}, fmt.Errorf("lvs/ipvs: read timeouts: %w", err)
	}
	s := func(n uint32) time.Duration { return time.Duration(n) * time.Second }
	return lvs.Timeouts{TCP: s(c.TCPTimeout), TCPFin: s(c.TCPFinTimeout), UDP: s(c.UDPTimeout)}, nil
}

// createService creates a service, through Tandem's own socket when it
// names a persistence engine.
func (k *Kernel) createService(s lvs.Service, svc ipvs.Service) error {
	if s.PersistenceEngine != "" {
		return k.nl.putService(cmdNewService, s)
	}
	return k.c.CreateService(svc)
}

// persistenceEngines reads the services' persistence engines.
func (k *Kernel) persistenceEngines() (map[lvs.ServiceKey]string, error) {
	pes, err := k.nl.persistenceEngines()
	if err != nil {
		return nil, fmt.Errorf("lvs/ipvs: list services: %w", err)
	}
	return pes, nil
}

// fromService converts a service read from the kernel.
func fromService(s ipvs.Service) lvs.Service {
	out := lvs.Service{
		ServiceKey: lvs.ServiceKey{
			Family: lvs.AddressFamily(s.Family),
			FWMark: s.FWMark,
		},
		Scheduler: lvs.Scheduler(s.Scheduler),
	}
	if s.FWMark == 0 {
		out.Protocol = lvs.Protocol(s.Protocol)
		out.VIP = s.Address
		out.Port = s.Port
	}
	if s.Flags&ipvs.ServicePersistent != 0 {
		out.PersistenceTimeout = s.Timeout
	}
	// An IPv4 mask need not be a prefix (ipvsadm -M, keepalived's
	// persistence_granularity); it is kept as the kernel has it.
	if m, ok := netip.AddrFromSlice(s.Netmask.AsSlice()); ok {
		out.PersistenceMask = m
	}
	if s.Flags&ipvs.ServiceOnePacket != 0 {
		out.Flags |= lvs.FlagOnePacket
	}
	// IP_VS_SVC_F_SCHED1 and SCHED2 mean fallback and port to both sh
	// and mh (include/uapi/linux/ip_vs.h); other schedulers ignore them,
	// and so does Tandem.
	fallback, port := s.Flags&ipvs.ServiceSchedulerOpt1 != 0, s.Flags&ipvs.ServiceSchedulerOpt2 != 0
	switch out.Scheduler {
	case lvs.SourceHash:
		out.Flags |= flagIf(fallback, lvs.FlagSHFallback) | flagIf(port, lvs.FlagSHPort)
	case lvs.MaglevHash:
		out.Flags |= flagIf(fallback, lvs.FlagMHFallback) | flagIf(port, lvs.FlagMHPort)
	}
	return out
}

func flagIf(cond bool, f lvs.Flags) lvs.Flags {
	if cond {
		return f
	}
	return 0
}

// toService converts a service for the kernel. The netmask is always sent,
// as ipvsadm does: the kernel rejects an IPv6 service without one. A key
// without a family (as a caller of Stats may write it) gets its VIP's.
func toService(s lvs.Service) ipvs.Service {
	if s.Family == 0 && s.VIP.IsValid() {
		s.Family = lvs.IPv4
		if s.VIP.Is6() {
			s.Family = lvs.IPv6
		}
	}
	famBits := 32
	if s.Family == lvs.IPv6 {
		famBits = 128
	}
	mask := s.PersistenceMask
	if !mask.IsValid() {
		mask = lvs.PrefixMask(s.Family, famBits)
	}
	nm, _ := netmask.MaskFromSlice(mask.AsSlice())
	out := ipvs.Service{
		Family:    ipvs.AddressFamily(s.Family),
		FWMark:    s.FWMark,
		Scheduler: string(s.Scheduler),
		Timeout:   s.PersistenceTimeout,
		Netmask:   nm,
	}
	if s.FWMark == 0 {
		out.Address, out.Port, out.Protocol = s.VIP, s.Port, ipvs.Protocol(s.Protocol)
	}
	if s.PersistenceTimeout > 0 {
		out.Flags |= ipvs.ServicePersistent
	}
	if s.Flags&lvs.FlagOnePacket != 0 {
		out.Flags |= ipvs.ServiceOnePacket
	}
	if s.Flags&(lvs.FlagSHFallback|lvs.FlagMHFallback) != 0 {
		out.Flags |= ipvs.ServiceSchedulerOpt1
	}
	if s.Flags&(lvs.FlagSHPort|lvs.FlagMHPort) != 0 {
		out.Flags |= ipvs.ServiceSchedulerOpt2
	}
	return out
}

var methods = map[lvs.Method]ipvs.ForwardType{
	lvs.NAT: ipvs.Masquerade,
	lvs.DR:  ipvs.DirectRoute,
	lvs.TUN: ipvs.Tunnel,
}

// fromDest converts a destination read from the kernel. A forwarding
// method Tandem does not configure (Local, Bypass: made by hand) comes
// back as MethodUnset, so the reconciler sees a difference and corrects it
// if the service is Tandem's.
func fromDest(d ipvs.Destination) lvs.Dest {
	out := lvs.Dest{
		Addr:           netip.AddrPortFrom(d.Address, d.Port),
		Weight:         int(d.Weight),
		UpperThreshold: d.UpperThreshold,
		LowerThreshold: d.LowerThreshold,
	}
	for m, f := range methods {
		if f == d.FwdMethod {
			out.Method = m
		}
	}
	// The kernel keeps and reports the tunnel attributes whatever the
	// method; they mean something (and lvs.Dest carries them) only for
	// TUN.
	if out.Method == lvs.TUN {
		out.Tunnel = lvs.Tunnel{Type: lvs.TunnelType(d.TunnelType), Port: d.TunnelPort, Csum: lvs.TunnelCsum(d.TunnelFlags)}
	}
	return out
}

// toDest converts a destination for the kernel. Its family is its own
// address's: it differs from the service's only through a tunnel.
func toDest(d lvs.Dest) ipvs.Destination {
	fam := ipvs.INET
	if d.Addr.Addr().Is6() {
		fam = ipvs.INET6
	}
	out := ipvs.Destination{
		Address:        d.Addr.Addr(),
		Port:           d.Addr.Port(),
		Family:         fam,
		FwdMethod:      methods[d.Method],
		Weight:         uint32(d.Weight),
		UpperThreshold: d.UpperThreshold,
		LowerThreshold: d.LowerThreshold,
	}
	// IPVS_DEST_ATTR_TUN_TYPE, _TUN_PORT (big-endian) and _TUN_FLAGS
	// (Linux 5.2, GRE 5.3), which cloudflare/ipvs always sends: lvs numbers
	// the type and the checksum option as the kernel does
	// (IP_VS_CONN_F_TUNNEL_TYPE_*, IP_VS_TUNNEL_ENCAP_FLAG_*). Only a TUN
	// server gets them: the kernel refuses a GUE type without a port
	// whatever the method (ip_vs_ctl.c ip_vs_add_dest).
	if d.Method == lvs.TUN {
		out.TunnelType = ipvs.TunnelType(d.Tunnel.Type)
		out.TunnelPort = d.Tunnel.Port
		out.TunnelFlags = ipvs.TunnelFlags(d.Tunnel.Csum)
	}
	return out
}
