// Package firewall keeps keepalived's own firewall rules in an nftables
// table of Tandem's: while a VRRP instance that is not the address owner
// (priority 255) and runs without `accept` holds its addresses, traffic
// addressed to them is dropped and traffic sent from them is too (RFC 5798
// §6.4.3: a master in Accept_Mode False must not accept packets addressed
// to the virtual addresses it does not own; keepalived.conf(5) accept,
// vrrp_strict, nftables).
//
// # Layout
//
// One table, family inet, named by global_defs `nftables NAME` (default
// config.DefaultFirewallTable). keepalived's own layout (vrrp_nftables.c)
// is the model: the same chains, sets and verdicts, in one inet table
// instead of an ip and an ip6 one.
//
//	chain in   filter, hook input,  priority P (nftables_priority, -1):
//	           icmpv6 type nd-neighbor-solicit..nd-neighbor-advert accept
//	           ip daddr @vips4 drop
//	           ip6 daddr @vips6 drop
//	           ip6 daddr . iif @vips6_ll drop
//	           ip6 daddr . iifname @vips6_ll_name drop
//	chain out  filter, hook output, priority P: the same on saddr, oif, oifname
//
// Neighbour discovery is accepted first, so that the master still answers
// solicitations for its addresses and announces them (RFC 5798 §6.4.3).
// IPv6 link-local addresses are only unique on their link, so they are
// keyed by interface: by index, or by name for instances with
// dont_track_primary unless nftables_ifindex (the interface may come back
// with another index), as keepalived does. nftables_counters puts a
// counter in each rule.
//
// # Transactions
//
// A state change (an instance becomes master, or stops being one) is one
// nf_tables transaction of element additions and deletions; the table,
// chains and rules are not touched, so the counters run on. A reload that
// changes addresses does the same. Only a change of the table's settings
// (name, priority, counters, ifindex) rebuilds it: the old table is
// deleted and the new one created, with its elements, in one transaction.
//
// # What it does not drop
//
// The chains hook input and output, so packets forwarded through the
// director (the master's routing duty, RFC 5798 §6.4.3) pass. So do those
// Tandem's nftables data plane takes before input: NAT rewrites them at
// prerouting, DR steals them at ingress. Kernel IPVS hooks input after
// these chains, so, as with keepalived, its services on a no-accept
// master's addresses get nothing: configure `accept` for them.
//
// # Ownership
//
// The table is Tandem's: the first rule of its chain in carries Marker
// as its comment (what `nft list` shows; a set's comment is not read back
// by the library).
// The first Sync deletes every inet table that carries it (a crashed run's,
// under whatever name it had), and refuses a table of the configured name
// that does not carry it rather than deleting someone else's rules. One
// Tandem runs per network namespace (internal/nslock), so no second copy
// fights over it. Close deletes it.
package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
)

// Marker is the comment of the first rule of chain in of a table of
// Tandem's.
const Marker = "tandem: no-accept drop rules (keepalived nftables)"

// Set and chain names.
const (
	SetV4        = "vips4"
	SetV6        = "vips6"
	SetV6LL      = "vips6_ll"      // address . interface index
	SetV6LLName  = "vips6_ll_name" // address . interface name
	ChainIn      = "in"
	ChainOut     = "out"
	ifNameSize   = 16 // IFNAMSIZ
	addrOwner    = 255
	icmpv6NDSol  = 135 // RFC 4861 §4.3
	icmpv6NDAdv  = 136 // RFC 4861 §4.4
	nfprotoIPv4  = unix.NFPROTO_IPV4
	nfprotoIPv6  = unix.NFPROTO_IPV6
	ipv4SrcOff   = 12 // RFC 791 header offsets
	ipv4DstOff   = 16
	ipv6SrcOff   = 8 // RFC 8200
	ipv6DstOff   = 24
	ipv4AddrSize = 4
	ipv6AddrSize = 16
)

// Settings are the table's: they come from global_defs.
type Settings struct {
	Table    string
	Priority int32
	Counters bool
	IfIndex  bool
}

// SettingsOf are the settings global_defs gives.
func SettingsOf(f *config.Firewall) Settings {
	s := Settings{Table: f.Table, Priority: int32(f.Priority), Counters: f.Counters, IfIndex: f.IfIndex}
	if s.Table == "" {
		s.Table = config.DefaultFirewallTable
	}
	return s
}

// Addr is an address traffic to and from which is dropped. Iface is set
// for IPv6 link-local addresses only: the interface they are on, keyed
// by name when ByName, else by index.
type Addr struct {
	IP     netip.Addr
	Iface  string
	ByName bool
}

// NoAccept reports whether traffic to ic's addresses is dropped while it
// holds them: keepalived's vrrp_handle_accept_mode, for an instance that
// is not the address owner and has no `accept` (the default under
// vrrp_strict).
func NoAccept(ic *config.Instance) bool { return !ic.Accept && ic.Priority != addrOwner }

// AddrsOf are ic's addresses (virtual_ipaddress and
// virtual_ipaddress_excluded, as keepalived) as the firewall keys them.
func AddrsOf(ic *config.Instance, s Settings) []Addr {
	var out []Addr
	for _, a := range slices.Concat(ic.VIPs, ic.ExcludedVIPs) {
		ip := a.Prefix.Addr().Unmap()
		fa := Addr{IP: ip}
		if ip.Is6() && ip.IsLinkLocalUnicast() {
			fa.Iface = a.Dev
			if fa.Iface == "" {
				fa.Iface = ic.Interface
			}
			fa.ByName = !s.IfIndex && ic.DontTrackPrimary && (fa.Iface == ic.Interface || a.NoTrack)
		}
		out = append(out, fa)
	}
	return out
}

// Firewall is the table. It is not safe for concurrent use: the VRRP
// engine's loop is its only caller.
type Firewall struct {
	log   *slog.Logger
	netns int // -1: the caller's
	links *netlink.Handle

	cleaned bool            // the first Sync removed earlier runs' tables
	table   *nftables.Table // nil: none
	applied Settings        // table's
	sets    map[string]*nftables.Set
	have    map[string][]nftables.SetElement // the table's elements, by set
	// Commits counts the transactions sent, for tests.
	Commits int
}

// Option configures New.
type Option func(*Firewall)

// WithNetNS programs the network namespace open as fd instead of the
// caller's (tests). The Firewall does not close fd.
func WithNetNS(fd int) Option { return func(f *Firewall) { f.netns = fd } }

// New returns a Firewall; it touches nothing before the first Sync.
func New(log *slog.Logger, opts ...Option) *Firewall {
	f := &Firewall{log: log, netns: -1}
	for _, o := range opts {
		o(f)
	}
	return f
}

func (f *Firewall) conn() (*nftables.Conn, error) {
	var c *nftables.Conn
	var err error
	if f.netns >= 0 {
		c, err = nftables.New(nftables.WithNetNSFd(f.netns))
	} else {
		c, err = nftables.New()
	}
	if err != nil {
		return nil, fmt.Errorf("firewall: open netlink: %w", err)
	}
	return c, nil
}

// Sync makes the table hold exactly drop, with settings s; with needed
// false (no instance is no-accept) there is no table. Nothing is sent
// when nothing changes. On an error the table is as before, and the next
// Sync tries again.
func (f *Firewall) Sync(s Settings, needed bool, drop []Addr) error {
	c, err := f.conn()
	if err != nil {
		return err
	}
	queued := false
	if !f.cleaned {
		n, err := f.removeLeftovers(c, s.Table, needed)
		if err != nil {
			return err
		}
		queued = n > 0
	}
	switch {
	case !needed:
		if f.table != nil {
			c.DelTable(f.table)
			queued = true
		}
		if err := f.commit(c, queued); err != nil {
			return err
		}
		f.cleaned, f.table, f.sets, f.have = true, nil, nil, nil
		return nil
	case f.table == nil || f.applied != s:
		return f.build(c, s, drop)
	}
	if err := f.update(c, drop); err != nil {
		return err
	}
	f.cleaned = true
	return nil
}

// removeLeftovers queues the deletion of every inet table carrying Marker
// (tables of earlier runs) and checks that the table s names is free or
// one of those.
func (f *Firewall) removeLeftovers(c *nftables.Conn, name string, needed bool) (int, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil && !needed {
		// A kernel without nftables has nothing left to remove, and
		// a configuration without no-accept instances needs none.
		f.log.Debug("firewall: no nftables; nothing to clean", "err", err)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("firewall: nftables unavailable (the kernel needs CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET): %w", err)
	}
	n := 0
	for _, t := range tables {
		ours, err := owned(c, t)
		if err != nil {
			return 0, err
		}
		if !ours {
			if t.Name == name && needed {
				return 0, foreignError(name)
			}
			continue
		}
		f.log.Info("removing the firewall table an earlier run left", "table", "inet "+t.Name)
		c.DelTable(t)
		n++
	}
	return n, nil
}

func foreignError(name string) error {
	return fmt.Errorf("firewall: nftables table inet %s exists and is not Tandem's; name another with global_defs nftables", name)
}

// owned reports whether t carries Marker.
func owned(c *nftables.Conn, t *nftables.Table) (bool, error) {
	rules, err := c.GetRules(t, &nftables.Chain{Name: ChainIn, Table: t})
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("firewall: read table inet %s: %w", t.Name, err)
	}
	if len(rules) == 0 {
		return false, nil
	}
	comment, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
	return comment == Marker, nil
}

// build (re)creates the table with settings s and elements drop in one
// transaction (with the deletion of the old one, and of earlier runs'
// queued on c).
func (f *Firewall) build(c *nftables.Conn, s Settings, drop []Addr) error {
	if f.table != nil {
		if f.table.Name != s.Table {
			t, err := c.ListTableOfFamily(s.Table, nftables.TableFamilyINet)
			if err == nil && t != nil {
				if ours, err := owned(c, t); err != nil || !ours {
					return foreignError(s.Table)
				}
			}
		}
		c.DelTable(f.table)
	}
	l := plan(s)
	c.AddTable(l.table)
	for _, ch := range l.chains {
		c.AddChain(ch)
	}
	elems := f.elements(drop)
	for _, set := range l.sets {
		if err := c.AddSet(set, elems[set.Name]); err != nil {
			return fmt.Errorf("firewall: set %s: %w", set.Name, err)
		}
	}
	for _, r := range l.rules {
		for _, e := range r.Exprs {
			if lk, ok := e.(*expr.Lookup); ok {
				// The set is created in the same transaction: the
				// kernel finds it by the id AddSet gave it.
				lk.SetID = setNamed(l.sets, lk.SetName).ID
			}
		}
		c.AddRule(r)
	}
	if err := f.commit(c, true); err != nil {
		return err
	}
	f.cleaned, f.table, f.applied, f.have = true, l.table, s, elems
	f.sets = map[string]*nftables.Set{}
	for _, set := range l.sets {
		f.sets[set.Name] = set
	}
	return nil
}

// update adds and deletes the elements that differ from drop, in one
// transaction.
func (f *Firewall) update(c *nftables.Conn, drop []Addr) error {
	want := f.elements(drop)
	queued := false
	for name, set := range f.sets {
		add, del := diff(f.have[name], want[name])
		if len(del) > 0 {
			if err := c.SetDeleteElements(set, del); err != nil {
				return fmt.Errorf("firewall: set %s: %w", name, err)
			}
			queued = true
		}
		if len(add) > 0 {
			if err := c.SetAddElements(set, add); err != nil {
				return fmt.Errorf("firewall: set %s: %w", name, err)
			}
			queued = true
		}
	}
	if err := f.commit(c, queued); err != nil {
		return err
	}
	f.have = want
	return nil
}

func setNamed(sets []*nftables.Set, name string) *nftables.Set {
	return sets[slices.IndexFunc(sets, func(s *nftables.Set) bool { return s.Name == name })]
}

// diff returns the elements of want that have lacks, and those of have
// that want lacks, by key.
func diff(have, want []nftables.SetElement) (add, del []nftables.SetElement) {
	in := func(l []nftables.SetElement, e nftables.SetElement) bool {
		return slices.ContainsFunc(l, func(o nftables.SetElement) bool { return string(o.Key) == string(e.Key) })
	}
	for _, e := range want {
		if !in(have, e) {
			add = append(add, e)
		}
	}
	for _, e := range have {
		if !in(want, e) {
			del = append(del, e)
		}
	}
	return add, del
}

func (f *Firewall) commit(c *nftables.Conn, queued bool) error {
	if !queued {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: commit: %w", err)
	}
	f.Commits++
	return nil
}

// elements are drop's set elements by set name. An IPv6 link-local
// address whose interface cannot be found is left out (and logged): the
// next Sync tries it again.
func (f *Firewall) elements(drop []Addr) map[string][]nftables.SetElement {
	return elements(drop, f.ifindex, f.log)
}

func elements(drop []Addr, ifindex func(string) (uint32, error), log *slog.Logger) map[string][]nftables.SetElement {
	out := map[string][]nftables.SetElement{}
	seen := map[Addr]bool{}
	for _, a := range drop {
		if seen[a] {
			continue // two instances with one address
		}
		set, key := SetV4, a.IP.AsSlice()
		switch {
		case a.Iface == "" && a.IP.Is6():
			set = SetV6
		case a.ByName:
			var name [ifNameSize]byte
			copy(name[:], a.Iface)
			set, key = SetV6LLName, append(key, name[:]...)
		case a.Iface != "":
			idx, err := ifindex(a.Iface)
			if err != nil {
				log.Warn("firewall: link-local address left out: no interface", "addr", a.IP, "interface", a.Iface, "err", err)
				continue
			}
			set, key = SetV6LL, binary.NativeEndian.AppendUint32(key, idx)
		}
		seen[a] = true
		out[set] = append(out[set], nftables.SetElement{Key: key})
	}
	return out
}

func (f *Firewall) ifindex(name string) (uint32, error) {
	if f.links == nil {
		var err error
		if f.netns >= 0 {
			f.links, err = netlink.NewHandleAt(netns.NsHandle(f.netns))
		} else {
			f.links, err = netlink.NewHandle()
		}
		if err != nil {
			return 0, err
		}
	}
	l, err := f.links.LinkByName(name)
	if err != nil {
		return 0, err
	}
	return uint32(l.Attrs().Index), nil
}

// Close deletes the table (and what earlier runs left, if no Sync ran).
func (f *Firewall) Close() error {
	err := f.Sync(f.applied, false, nil)
	if f.links != nil {
		f.links.Close()
		f.links = nil
	}
	return err
}

// layout is the table's objects, before any is sent.
type layout struct {
	table  *nftables.Table
	chains []*nftables.Chain
	sets   []*nftables.Set
	rules  []*nftables.Rule
}

// plan lays the table out for s (see the package comment).
func plan(s Settings) layout {
	t := &nftables.Table{Name: s.Table, Family: nftables.TableFamilyINet}
	accept := nftables.ChainPolicyAccept
	prio := nftables.ChainPriority(s.Priority)
	chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: hook, Priority: &prio, Policy: &accept}
	}
	in, out := chain(ChainIn, nftables.ChainHookInput), chain(ChainOut, nftables.ChainHookOutput)
	v4 := &nftables.Set{Table: t, Name: SetV4, KeyType: nftables.TypeIPAddr}
	v6 := &nftables.Set{Table: t, Name: SetV6, KeyType: nftables.TypeIP6Addr}
	ll := &nftables.Set{Table: t, Name: SetV6LL, KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIFIndex), Concatenation: true}
	llName := &nftables.Set{Table: t, Name: SetV6LLName, KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIFName), Concatenation: true}
	l := layout{table: t, chains: []*nftables.Chain{in, out}, sets: []*nftables.Set{v4, v6, ll, llName}}
	for _, dir := range []struct {
		ch            *nftables.Chain
		off4, off6    uint32
		index, byName expr.MetaKey
	}{
		{in, ipv4DstOff, ipv6DstOff, expr.MetaKeyIIF, expr.MetaKeyIIFNAME},
		{out, ipv4SrcOff, ipv6SrcOff, expr.MetaKeyOIF, expr.MetaKeyOIFNAME},
	} {
		rule := func(ex ...expr.Any) { l.rules = append(l.rules, &nftables.Rule{Table: t, Chain: dir.ch, Exprs: ex}) }
		// Neighbour discovery first; in's carries the marker.
		rule(
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{icmpv6NDSol}, ToData: []byte{icmpv6NDAdv}},
			&expr.Verdict{Kind: expr.VerdictAccept},
		)
		if dir.ch == in {
			l.rules[len(l.rules)-1].UserData = userdata.AppendString(nil, userdata.TypeComment, Marker)
		}
		rule(dropExprs(s, nfprotoIPv4, dir.off4, ipv4AddrSize, 0, v4)...)
		rule(dropExprs(s, nfprotoIPv6, dir.off6, ipv6AddrSize, 0, v6)...)
		rule(dropExprs(s, nfprotoIPv6, dir.off6, ipv6AddrSize, dir.index, ll)...)
		rule(dropExprs(s, nfprotoIPv6, dir.off6, ipv6AddrSize, dir.byName, llName)...)
	}
	return l
}

// dropExprs is `meta nfproto P <addr> [. iface] @set [counter] drop`: the
// address at off in the network header, and the interface (meta key
// iface, 0: none) in the next register, looked up in set.
func dropExprs(s Settings, proto byte, off, size uint32, iface expr.MetaKey, set *nftables.Set) []expr.Any {
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
	}
	if iface != 0 {
		// A 16-byte address fills register 1; the interface follows
		// in register 2, as a concatenated key is laid out.
		ex = append(ex, &expr.Meta{Key: iface, Register: 2})
	}
	ex = append(ex, &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
	if s.Counters {
		ex = append(ex, &expr.Counter{})
	}
	return append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
}
