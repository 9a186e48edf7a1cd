// Package bgp is Tandem's embedded BGP speaker (GoBGP as a library): it
// peers with the routers of the bgp block and announces the host routes
// of the VIPs this director can serve, so that the routers spread the
// VIPs' traffic over every director that announces them.
//
// The speaker only dials: GoBGP's listening socket is off (ListenPort
// -1). A director announces and learns nothing, so it needs no session a
// router opens; the router is configured to accept the director's
// connection (bird: a neighbor without "passive"), and no port 179 is
// open on the director.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"tandem/internal/clock"
	"tandem/internal/config"
)

// GracefulShutdownCommunity is the well-known GRACEFUL_SHUTDOWN community
// 65535:0 (RFC 8326 section 5): a router that honours it lowers the
// route's LOCAL_PREF, so traffic moves to the other directors before the
// route is withdrawn.
const GracefulShutdownCommunity = 0xffff0000

// connectRetry is how soon the speaker dials a router again after a
// failed attempt (GoBGP's default, 120 s, would leave a director out of
// rotation for two minutes after a router restart).
const connectRetry = 5

// Attrs are the path attributes of an announced route besides its next
// hop (this director's address on the session).
type Attrs struct {
	// Communities are RFC 1997 communities, ASN<<16 | value.
	Communities []uint32
	// MED is the MULTI_EXIT_DISC; nil: not sent.
	MED *uint32
}

// AttrsOf gives the attributes the bgp block asks for.
func AttrsOf(b *config.BGP) Attrs { return Attrs{Communities: b.Communities, MED: b.MED} }

// Speaker is one BGP speaker and the routes it announces.
type Speaker struct {
	s    *server.BgpServer
	log  *slog.Logger
	clk  clock.Clock
	errs *lastErrors

	mu sync.Mutex // guards announced and shutdown
	// announced is every route announced and not withdrawn, with its
	// attributes.
	announced map[netip.Prefix]Attrs
	// shutdown is set during GracefulShutdown: the routes carry 65535:0.
	shutdown bool
}

// Start runs a speaker for b and opens its sessions.
func Start(ctx context.Context, b *config.BGP, log *slog.Logger, clk clock.Clock) (*Speaker, error) {
	errs := &lastErrors{m: map[string]string{}}
	s := server.NewBgpServer(server.LoggerOption(&logAdapter{log: log, errs: errs}))
	go s.Serve()
	sp := &Speaker{s: s, log: log, clk: clk, errs: errs, announced: map[netip.Prefix]Attrs{}}
	err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: b.LocalAS, RouterId: b.RouterID.String(), ListenPort: -1,
	}})
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("bgp: start: %w", err)
	}
	for _, n := range b.Neighbors {
		if err := sp.AddNeighbor(ctx, n); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return sp, nil
}

// AddNeighbor opens a session to n.
func (sp *Speaker) AddNeighbor(ctx context.Context, n *config.BGPNeighbor) error {
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Addr.String(), PeerAsn: n.RemoteAS, AuthPassword: n.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: uint64(time.Duration(n.HoldTime) / time.Second), KeepaliveInterval: uint64(time.Duration(n.KeepaliveTime) / time.Second),
			ConnectRetry: connectRetry,
		}},
		Transport: &api.Transport{},
	}
	if n.Source.IsValid() {
		p.Transport.LocalAddress = n.Source.String()
	}
	if n.MultihopTTL > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.MultihopTTL)}
	}
	if err := sp.s.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
		return fmt.Errorf("bgp: neighbor %s: %w", n.Addr, err)
	}
	return nil
}

// RemoveNeighbor closes the session to addr (a NOTIFICATION Cease, so
// the router withdraws what it learned from this director at once).
func (sp *Speaker) RemoveNeighbor(ctx context.Context, addr netip.Addr) error {
	if err := sp.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		return fmt.Errorf("bgp: neighbor %s: %w", addr, err)
	}
	sp.errs.forget(addr.String())
	return nil
}

// ResetNeighbor restarts the session to addr, as a BFD session going
// down asks (RFC 5882 section 4.3).
func (sp *Speaker) ResetNeighbor(ctx context.Context, addr netip.Addr, why string) error {
	err := sp.s.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr.String(), Communication: why})
	if err != nil {
		return fmt.Errorf("bgp: neighbor %s: reset: %w", addr, err)
	}
	return nil
}

// Announce announces the host route p (a VIP's /32 or /128) with attrs to
// every neighbor of its family; announcing it again replaces its
// attributes. After GracefulShutdown it carries 65535:0 too.
func (sp *Speaker) Announce(ctx context.Context, p netip.Prefix, attrs Attrs) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := sp.add(ctx, p, attrs, sp.shutdown); err != nil {
		return err
	}
	sp.announced[p] = attrs
	return nil
}

// Withdraw withdraws p; a route not announced is no error.
func (sp *Speaker) Withdraw(ctx context.Context, p netip.Prefix) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if _, ok := sp.announced[p]; !ok {
		return nil
	}
	return sp.withdraw(ctx, p)
}

// withdraw withdraws p (under mu).
func (sp *Speaker) withdraw(ctx context.Context, p netip.Prefix) error {
	path, err := newPath(p, Attrs{}, false)
	if err != nil {
		return err
	}
	if err := sp.s.DeletePath(ctx, &api.DeletePathRequest{Path: path}); err != nil {
		return fmt.Errorf("bgp: withdraw %s: %w", p, err)
	}
	delete(sp.announced, p)
	return nil
}

// add announces p (under mu).
func (sp *Speaker) add(ctx context.Context, p netip.Prefix, attrs Attrs, gshut bool) error {
	path, err := newPath(p, attrs, gshut)
	if err != nil {
		return err
	}
	if _, err := sp.s.AddPath(ctx, &api.AddPathRequest{Path: path}); err != nil {
		return fmt.Errorf("bgp: announce %s: %w", p, err)
	}
	return nil
}

// GracefulShutdown takes this director out of the routers' rotation
// (RFC 8326 section 4): every announced route is announced again with
// the GRACEFUL_SHUTDOWN community, the speaker waits delay
// (graceful_shutdown_delay) for the routers to move the traffic to the
// other directors, then withdraws every route. Routes announced
// meanwhile carry the community too; those announced after it returns
// do not (tandem drain --undo). It returns early, withdrawing, when ctx
// ends.
func (sp *Speaker) GracefulShutdown(ctx context.Context, delay time.Duration) error {
	sp.mu.Lock()
	sp.shutdown = true
	var errs []error
	for p, attrs := range sp.announced {
		errs = append(errs, sp.add(ctx, p, attrs, true))
	}
	n := len(sp.announced)
	sp.mu.Unlock()
	if n > 0 {
		sp.log.Info("bgp: graceful shutdown: routes marked 65535:0", "routes", n, "delay", delay)
		woken := make(chan struct{})
		t := sp.clk.AfterFunc(delay, func() { close(woken) })
		select {
		case <-woken:
		case <-ctx.Done():
			t.Stop()
		}
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for p := range sp.announced {
		if err := sp.withdraw(context.WithoutCancel(ctx), p); err != nil {
			errs = append(errs, err)
		}
	}
	sp.shutdown = false
	return errors.Join(errs...)
}

// Announced is the routes announced now, sorted.
func (sp *Speaker) Announced() []netip.Prefix {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	out := make([]netip.Prefix, 0, len(sp.announced))
	for p := range sp.announced {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// Close stops the speaker: its sessions end with a NOTIFICATION Cease
// (the routers drop its routes at once). GoBGP's Serve loop has no way
// out and stays, blocked, with the stopped server.
func (sp *Speaker) Close() { sp.s.Stop() }

// Neighbor is one session's state for tandem status.
type Neighbor struct {
	Addr netip.Addr
	// State is the RFC 4271 FSM state, lower case ("established").
	State string
	// Since is when the session was established (zero unless it is).
	Since time.Time
	// Sent and Received count the prefixes advertised to the router and
	// learned from it.
	Sent, Received uint64
	// LastError is the last failure GoBGP reported for the session
	// (empty: none).
	LastError string
}

// Status is the speaker's sessions, by address.
func (sp *Speaker) Status(ctx context.Context) ([]Neighbor, error) {
	var out []Neighbor
	err := sp.s.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		n := Neighbor{Addr: addr, State: "unknown", LastError: sp.errs.get(addr.String())}
		if st := p.GetState(); st != nil {
			n.State = sessionStates[st.GetSessionState()]
		}
		if up := p.GetTimers().GetState().GetUptime(); up != nil && n.State == "established" {
			n.Since = up.AsTime()
		}
		for _, af := range p.GetAfiSafis() {
			n.Sent += af.GetState().GetAdvertised()
			n.Received += af.GetState().GetReceived()
		}
		out = append(out, n)
	})
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Addr.Compare(b.Addr) })
	return out, err
}

var sessionStates = map[api.PeerState_SessionState]string{
	api.PeerState_UNKNOWN: "unknown", api.PeerState_IDLE: "idle", api.PeerState_CONNECT: "connect", api.PeerState_ACTIVE: "active",
	api.PeerState_OPENSENT: "opensent", api.PeerState_OPENCONFIRM: "openconfirm", api.PeerState_ESTABLISHED: "established",
}

// newPath builds the UPDATE content for p: ORIGIN IGP, the next hop left
// unspecified (GoBGP puts the session's local address), the communities
// (with 65535:0 when gshut) and the MED.
func newPath(p netip.Prefix, attrs Attrs, gshut bool) (*api.Path, error) {
	nlri := &api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())}
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	msgs := []proto.Message{&api.OriginAttribute{Origin: 0}}
	if p.Addr().Is4() {
		msgs = append(msgs, &api.NextHopAttribute{NextHop: "0.0.0.0"})
	} else {
		family.Afi = api.Family_AFI_IP6
		n, err := anypb.New(nlri)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, &api.MpReachNLRIAttribute{Family: family, NextHops: []string{"::"}, Nlris: []*anypb.Any{n}})
	}
	comms := attrs.Communities
	if gshut {
		comms = append(slices.Clone(comms), GracefulShutdownCommunity)
	}
	if len(comms) > 0 {
		msgs = append(msgs, &api.CommunitiesAttribute{Communities: comms})
	}
	if attrs.MED != nil {
		msgs = append(msgs, &api.MultiExitDiscAttribute{Med: *attrs.MED})
	}
	path := &api.Path{Family: family}
	var err error
	if path.Nlri, err = anypb.New(nlri); err != nil {
		return nil, err
	}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		path.Pattrs = append(path.Pattrs, a)
	}
	return path, nil
}
