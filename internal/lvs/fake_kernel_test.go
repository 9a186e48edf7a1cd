package lvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeKernel is an in-memory Kernel with IPVS's semantics: adding an
// existing service or dest fails (EEXIST), touching a missing one fails
// (ESRCH/ENOENT), deleting a service drops its dests, and the per-service
// "Method" is not stored because IPVS has no such attribute.
type fakeKernel struct {
	svcs    map[ServiceKey]*fakeSvc
	log     []Op   // every op accepted
	applies []Plan // the plan of each Apply call

	// failAt makes the op with this 0-based index among the ops tried
	// fail (counting from the last reset of calls), -1 for never.
	failAt int
	calls  int
	// whole makes Apply refuse a batch whole when one of its ops fails,
	// as the nftables backend does (see Kernel.Apply).
	whole bool

	servicesErr error
	destsErr    error
}

type fakeSvc struct {
	svc   Service
	dests map[netip.AddrPort]Dest
}

var (
	errExist   = errors.New("file exists")
	errNoSvc   = errors.New("no such process")
	errNoDest  = errors.New("no such file or directory")
	errInjects = errors.New("injected failure")
)

func newFakeKernel() *fakeKernel {
	return &fakeKernel{svcs: make(map[ServiceKey]*fakeSvc), failAt: -1}
}

// Services returns the services in map order, deliberately unsorted. Seeded
// services keep their fields as written (no PersistenceMask, say), which
// exercises the reconciler's normalization.
func (k *fakeKernel) Services() ([]Service, error) {
	if k.servicesErr != nil {
		return nil, k.servicesErr
	}
	var out []Service
	for _, s := range k.svcs {
		out = append(out, s.svc)
	}
	return out, nil
}

func (k *fakeKernel) Dests(key ServiceKey) ([]Dest, error) {
	if k.destsErr != nil {
		return nil, k.destsErr
	}
	s, ok := k.svcs[key]
	if !ok {
		return nil, errNoSvc
	}
	return slices.Collect(maps.Values(s.dests)), nil
}

func (k *fakeKernel) Apply(ctx context.Context, plan Plan) (int, error) {
	k.applies = append(k.applies, plan)
	n := 0
	for _, b := range plan {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var undo map[ServiceKey]*fakeSvc
		if k.whole {
			undo = map[ServiceKey]*fakeSvc{b.Key: k.svcs[b.Key].clone()}
		}
		logged := len(k.log)
		for i, op := range b.Ops {
			if err := k.apply(op); err != nil {
				if !k.whole {
					return n + i, err
				}
				if undo[b.Key] == nil {
					delete(k.svcs, b.Key)
				} else {
					k.svcs[b.Key] = undo[b.Key]
				}
				k.log = k.log[:logged]
				return n, &OpError{Op: op, Index: n + i, Err: err}
			}
		}
		n += len(b.Ops)
	}
	return n, nil
}

// Counters returns zero counters for every dest: the fake carries no
// traffic.
func (k *fakeKernel) Counters() (map[ServiceKey][]DestCounters, error) {
	out := map[ServiceKey][]DestCounters{}
	for key, s := range k.svcs {
		for addr := range s.dests {
			out[key] = append(out[key], DestCounters{Addr: addr})
		}
	}
	return out, nil
}

func (s *fakeSvc) clone() *fakeSvc {
	if s == nil {
		return nil
	}
	return &fakeSvc{svc: s.svc, dests: maps.Clone(s.dests)}
}

func (k *fakeKernel) apply(op Op) error {
	defer func() { k.calls++ }()
	if k.calls == k.failAt {
		return errInjects
	}
	key := op.Service.Key()
	s := k.svcs[key]
	if s == nil && op.Kind != AddService {
		return errNoSvc
	}
	switch op.Kind {
	case AddService, UpdateService:
		if op.Kind == AddService && s != nil {
			return errExist
		}
		svc := op.Service
		svc.Method = MethodUnset
		if s == nil {
			s = &fakeSvc{dests: make(map[netip.AddrPort]Dest)}
			k.svcs[key] = s
		}
		s.svc = svc
	case DelService:
		delete(k.svcs, key)
	case AddDest:
		if _, ok := s.dests[op.Dest.Addr]; ok {
			return errExist
		}
		s.dests[op.Dest.Addr] = op.Dest
	case UpdateDest, DelDest:
		if _, ok := s.dests[op.Dest.Addr]; !ok {
			return errNoDest
		}
		if op.Kind == DelDest {
			delete(s.dests, op.Dest.Addr)
		} else {
			s.dests[op.Dest.Addr] = op.Dest
		}
	default:
		return fmt.Errorf("bad op kind %v", op.Kind)
	}
	k.log = append(k.log, op)
	return nil
}

// seed installs a service and its dests directly, as an operator's ipvsadm
// would, bypassing the log.
func (k *fakeKernel) seed(vs VirtualServer) {
	s := &fakeSvc{svc: vs.Service, dests: make(map[netip.AddrPort]Dest)}
	for _, d := range vs.Dests {
		s.dests[d.Addr] = d
	}
	k.svcs[vs.Service.Key()] = s
}

// state returns the kernel's contents as sorted virtual servers, Method
// cleared and PersistenceMask normalized, for comparison with a Desired.
func (k *fakeKernel) state() []VirtualServer {
	var out []VirtualServer
	for _, s := range k.svcs {
		svc := s.svc.normalize()
		svc.Method = MethodUnset
		ds := slices.SortedFunc(maps.Values(s.dests), func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
		out = append(out, VirtualServer{Service: svc, Dests: ds})
	}
	slices.SortFunc(out, func(a, b VirtualServer) int { return a.Service.Key().Compare(b.Service.Key()) })
	return out
}

// wantState is what the kernel should hold for d (plus any foreign services).
func wantState(d *Desired, foreign ...VirtualServer) []VirtualServer {
	var out []VirtualServer
	for _, k := range d.Keys() {
		vs, _ := d.Lookup(k)
		vs.Service.Method = MethodUnset
		out = append(out, vs)
	}
	for _, vs := range foreign {
		vs.Service = vs.Service.normalize()
		vs.Service.Method = MethodUnset
		out = append(out, vs)
	}
	slices.SortFunc(out, func(a, b VirtualServer) int { return a.Service.Key().Compare(b.Service.Key()) })
	return out
}

// cmpOpts compares netip values, whose fields are unexported, by ==, and
// treats nil and empty slices alike.
var cmpOpts = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}
