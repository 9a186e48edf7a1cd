package lvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Kernel is a data-plane backend: the IPVS (generic netlink) and nftables
// implementations live in their own packages. It reports and changes the
// actual state in this package's terms, so the reconciler can diff it.
//
// Contract for implementations:
//   - Services returns every service of the backend, including ones Tandem
//     did not create (the reconciler decides ownership, see Reconciler), with
//     Flags in Tandem's bits and PersistenceBits as a prefix length; the
//     Service.Method field is ignored.
//   - Dests returns the destinations of one service with concrete Methods.
//   - Apply applies a plan: one Batch per virtual service, in order (see
//     Apply below).
//   - Counters returns every service's per-real-server counters, keyed as
//     Services reports the services (Family always set), for `tandem
//     status` and `tandem lvs list`, at the cost of what the backend needs
//     to read them all (nftables: one dump per table).
type Kernel interface {
	Services() ([]Service, error)
	Dests(ServiceKey) ([]Dest, error)
	// Apply applies plan, batch after batch, each batch's ops in order,
	// and returns how many ops (counted through the plan's batches, from
	// the first) are applied. The result is that of applying each op in
	// turn and stopping at the first failure, except that a backend that
	// can commit a batch as one transaction (nftables) applies each batch
	// whole or not at all, so that a virtual service goes from its old
	// pool to its new one at once, never through an intermediate pool.
	// When fewer than all ops are applied:
	//   - the error is ctx's if ctx ended first (it is checked between
	//     batches, and by a backend that applies ops one by one, between
	//     ops);
	//   - otherwise it is an *OpError naming the op the backend refused
	//     (Index counted as the return value is), or an error of op number
	//     n, the first not applied. A backend that refuses a batch whole
	//     returns the index of its first op, whichever op caused it.
	//
	// An Op of kind DelService removes the service together with its
	// destinations, as IPVS does (ip_vs_ctl.c: __ip_vs_del_service unlinks
	// every dest), so the reconciler never sends per-dest deletes for a
	// service it removes.
	Apply(ctx context.Context, plan Plan) (int, error)
	Counters() (map[ServiceKey][]DestCounters, error)
}

// Batch is one virtual service's part of a plan: the ops that change it,
// in the order the reconciler would send them one by one. Every op's
// Service has key Key.
type Batch struct {
	Key ServiceKey
	Ops []Op
}

// Plan is what one Reconcile sends: a batch per virtual service that
// changes, in the order they are applied.
type Plan []Batch

// Ops are p's ops in order, its batches' in a row: how Report, OpError and
// Kernel.Apply count them.
func (p Plan) Ops() []Op {
	var out []Op
	for _, b := range p {
		out = append(out, b.Ops...)
	}
	return out
}

// DestCounters are a real server's counters as a backend keeps them.
type DestCounters struct {
	Addr netip.AddrPort
	// ActiveConns and InactiveConns are IPVS's ActiveConn and InActConn
	// (ipvsadm -Ln). nftables keeps no per-server connection state: its
	// NAT reports the connections it scheduled to the server since it was
	// added as ActiveConns, and DR, which sees packets only, 0.
	ActiveConns, InactiveConns uint64
	// Packets and Bytes count traffic from clients to the server.
	Packets, Bytes uint64
}

// OpKind is the kind of one kernel operation.
type OpKind uint8

// Operation kinds. Their numeric order is not the order they are applied in;
// see Reconciler.Reconcile for that.
const (
	AddService OpKind = iota + 1
	UpdateService
	DelService
	AddDest
	UpdateDest
	DelDest
)

var opKindNames = [...]string{
	AddService:    "add-service",
	UpdateService: "update-service",
	DelService:    "del-service",
	AddDest:       "add-dest",
	UpdateDest:    "update-dest",
	DelDest:       "del-dest",
}

func (k OpKind) String() string {
	if int(k) < len(opKindNames) && opKindNames[k] != "" {
		return opKindNames[k]
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// Op is one kernel operation. Service is the full desired service for
// AddService and UpdateService, and identifies the service otherwise. Dest is
// the full desired dest for AddDest and UpdateDest, identifies the dest for
// DelDest, and is zero for service operations.
type Op struct {
	Kind    OpKind
	Service Service
	Dest    Dest
}

func (o Op) String() string {
	switch o.Kind {
	case AddService, UpdateService:
		s := o.Service
		pe := ""
		if s.PersistenceEngine != "" {
			pe = " pe=" + s.PersistenceEngine
		}
		return fmt.Sprintf("%v %v sched=%s flags=[%v] persist=%ds/%d%s",
			o.Kind, s.ServiceKey, s.Scheduler, s.Flags, s.PersistenceTimeout, s.PersistenceBits, pe)
	case AddDest, UpdateDest:
		d := o.Dest
		return fmt.Sprintf("%v %v -> %v weight=%d method=%v thresholds=%d/%d",
			o.Kind, o.Service.ServiceKey, d.Addr, d.Weight, d.Method, d.LowerThreshold, d.UpperThreshold)
	case DelDest:
		return fmt.Sprintf("%v %v -> %v", o.Kind, o.Service.ServiceKey, o.Dest.Addr)
	}
	return fmt.Sprintf("%v %v", o.Kind, o.Service.ServiceKey)
}

// Report tells what one Reconcile did.
type Report struct {
	// Ops are the operations the kernel accepted, in the order sent. When
	// Reconcile fails, the failed op is not among them.
	Ops []Op
	// Foreign are kernel services that differ from the desired state but
	// were left alone because Tandem does not own them.
	Foreign []ServiceKey
}

// Count returns how many applied ops are of kind k.
func (r Report) Count(k OpKind) int {
	n := 0
	for _, op := range r.Ops {
		if op.Kind == k {
			n++
		}
	}
	return n
}

// OpError is the error of an operation the kernel refused. Ops before it were
// applied and those after it were not, except that a kernel that applies a
// service's batch whole (see Kernel.Apply) applied none of its batch:
// Report.Ops says what was.
type OpError struct {
	Op    Op
	Index int // 0-based position of Op in the plan, its batches' ops in a row
	Total int // number of ops planned
	Err   error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("lvs: op %d of %d (%v): %v", e.Index+1, e.Total, e.Op, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// Reconciler drives a Kernel towards a Desired state with the fewest
// operations. It is not safe for concurrent use; the daemon runs one
// reconcile loop.
//
// Ownership: the kernel's IPVS table is shared with the operator (ipvsadm,
// other daemons) and IPVS has no field to tag a service with its creator, so
// the reconciler only creates, changes or deletes a kernel service if
//   - it is in the desired state (the configuration claims that key), or
//   - this Reconciler added it, or found it in the kernel while it was
//     desired, and it has since left the desired state (the reload case,
//     including services adopted from a previous process's run), or
//   - the owns predicate, if any, says so (the daemon's way to clean up
//     services of a previous Tandem process, e.g. from a state file).
//
// Every other service is reported in Report.Foreign and never touched, nor
// are its dests read.
type Reconciler struct {
	kernel  Kernel
	owns    func(ServiceKey) bool
	claimed map[ServiceKey]bool // see "Ownership" above
}

// NewReconciler returns a reconciler for k. owns may be nil.
func NewReconciler(k Kernel, owns func(ServiceKey) bool) *Reconciler {
	return &Reconciler{kernel: k, owns: owns, claimed: make(map[ServiceKey]bool)}
}

// Reconcile diffs want against the kernel and applies the difference: one
// Batch per service that changes, all handed to Kernel.Apply at once. The
// plan is ordered so that traffic never sees a half-built state, even from
// a backend that applies ops one by one:
//
//  1. For each desired service in key order: AddService if it is missing, or
//     UpdateService (in place, never delete+add) if its scheduler, flags or
//     persistence differ; then its dests: AddDest for new ones, UpdateDest for
//     changed weight, method or thresholds, and DelDest for the rest. Adds
//     come before deletes so a pool being replaced never drains to empty.
//  2. DelService, in key order, for owned services no longer desired. They
//     go last so a service moving to a new key (say, a port change) is up
//     before the old one goes; their dests go with them (see Kernel).
//
// Nothing is sent when the kernel already matches, so reconciling again, or
// after a reload that changed nothing, is free. On the first refused op it
// stops and returns an *OpError with what was applied so far in the report;
// the next Reconcile diffs afresh and carries on from the actual state.
// The kernel checks ctx between batches (see Kernel.Apply). A nil want is
// the empty state.
func (r *Reconciler) Reconcile(ctx context.Context, want *Desired) (Report, error) {
	if want == nil {
		want = &Desired{}
	}
	var rep Report
	plan, err := r.plan(want, &rep)
	if err != nil {
		return rep, err
	}
	ops := plan.Ops()
	n := 0
	if len(ops) > 0 {
		n, err = r.kernel.Apply(ctx, plan)
	}
	for _, op := range ops[:n] {
		rep.Ops = append(rep.Ops, op)
		switch op.Kind {
		case AddService:
			r.claimed[op.Service.ServiceKey] = true
		case DelService:
			delete(r.claimed, op.Service.ServiceKey)
		}
	}
	var opErr *OpError
	switch {
	case err == nil:
		return rep, nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return rep, fmt.Errorf("lvs: reconcile stopped after %d of %d ops: %w", n, len(ops), err)
	case errors.As(err, &opErr):
		// The backend named the op it refused, which may come after op n
		// when it refuses a whole batch.
		opErr.Total = len(ops)
		return rep, opErr
	}
	return rep, &OpError{Op: ops[n], Index: n, Total: len(ops), Err: err}
}

// plan computes the ordered plan, one batch per service that changes. It
// records foreign services in rep.
func (r *Reconciler) plan(want *Desired, rep *Report) (Plan, error) {
	actual, err := r.kernel.Services()
	if err != nil {
		return nil, fmt.Errorf("lvs: list services: %w", err)
	}
	have := make(map[ServiceKey]Service, len(actual))
	for _, s := range actual {
		s = s.normalize()
		if _, dup := have[s.Key()]; dup {
			return nil, fmt.Errorf("lvs: kernel lists service %v twice", s.Key())
		}
		have[s.Key()] = s
	}

	var plan Plan
	for _, k := range want.keys {
		vs := want.vs[k]
		cur, exists := have[k]
		var ops []Op
		if !exists {
			ops = append(ops, Op{Kind: AddService, Service: vs.Service})
			for _, d := range vs.Dests {
				ops = append(ops, Op{Kind: AddDest, Service: vs.Service, Dest: d})
			}
			plan = append(plan, Batch{Key: k, Ops: ops})
			continue
		}
		// The configuration claims this kernel service, whoever made it; if
		// it later leaves the configuration, it is ours to remove.
		r.claimed[k] = true
		if !cur.sameAttrs(vs.Service) {
			ops = append(ops, Op{Kind: UpdateService, Service: vs.Service})
		}
		dests, err := r.kernel.Dests(k)
		if err != nil {
			return nil, fmt.Errorf("lvs: list dests of %v: %w", k, err)
		}
		ops, err = diffDests(ops, vs, dests)
		if err != nil {
			return nil, err
		}
		if len(ops) > 0 {
			plan = append(plan, Batch{Key: k, Ops: ops})
		}
	}

	var stale []ServiceKey
	for k := range have {
		if _, desired := want.vs[k]; desired {
			continue
		}
		if r.claimed[k] || (r.owns != nil && r.owns(k)) {
			stale = append(stale, k)
		} else {
			rep.Foreign = append(rep.Foreign, k)
		}
	}
	slices.SortFunc(stale, ServiceKey.Compare)
	slices.SortFunc(rep.Foreign, ServiceKey.Compare)
	for _, k := range stale {
		plan = append(plan, Batch{Key: k, Ops: []Op{{Kind: DelService, Service: have[k]}}})
	}
	return plan, nil
}

// diffDests appends the dest operations that turn have into vs.Dests (sorted
// by address): adds, then updates, then deletes, each in address order.
func diffDests(ops []Op, vs VirtualServer, have []Dest) ([]Op, error) {
	cur := make(map[netip.AddrPort]Dest, len(have))
	for _, d := range have {
		if _, dup := cur[d.Addr]; dup {
			return nil, fmt.Errorf("lvs: kernel lists dest %v of %v twice", d.Addr, vs.Service.ServiceKey)
		}
		cur[d.Addr] = d
	}
	var updates []Op
	for _, d := range vs.Dests {
		c, ok := cur[d.Addr]
		switch {
		case !ok:
			ops = append(ops, Op{Kind: AddDest, Service: vs.Service, Dest: d})
		case c != d:
			updates = append(updates, Op{Kind: UpdateDest, Service: vs.Service, Dest: d})
		}
		delete(cur, d.Addr)
	}
	ops = append(ops, updates...)
	var gone []Dest
	for _, d := range cur {
		gone = append(gone, d)
	}
	slices.SortFunc(gone, func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
	for _, d := range gone {
		ops = append(ops, Op{Kind: DelDest, Service: vs.Service, Dest: Dest{Addr: d.Addr}})
	}
	return ops, nil
}
