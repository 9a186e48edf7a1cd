package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"tandem/internal/api"
	"tandem/internal/lab"
)

const (
	iface      = "eth0"
	clientNode = "client"
	// servePort is where every director answers with its name, on any
	// address, so a client reaching a VIP learns who holds it.
	servePort = 7070
)

// layout is the chaos lab: n directors and a client on one segment. The
// directors serve the VIPs themselves (servePort), so the client's
// availability through a VIP depends on VRRP alone.
func layout(n int) lab.Layout {
	y := lab.Layout{
		Iface:  iface,
		Net:    netip.MustParsePrefix("10.77.0.0/24"),
		Client: lab.Host{Name: clientNode, Addr: netip.MustParseAddr("10.77.0.100")},
	}
	for i := range n {
		y.Directors = append(y.Directors, lab.Host{Name: dirName(i), Addr: netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)})})
	}
	return y
}

// vrrpInst is one VRRP instance of the lab, the same on every director
// but for the priority.
type vrrpInst struct {
	name  string
	vrid  int
	vip   netip.Addr
	route netip.Prefix // its virtual_routes entry
	table int          // its virtual_rules entry: from vip table N
}

func instances(vips int) []vrrpInst {
	var out []vrrpInst
	for i := range vips {
		out = append(out, vrrpInst{
			name:  fmt.Sprintf("VI_%d", i+1),
			vrid:  50 + i,
			vip:   netip.AddrFrom4([4]byte{10, 77, 0, byte(200 + i)}),
			route: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(i), 0}), 24),
			table: 100 + i,
		})
	}
	return out
}

// priority spreads the instances' masters over the directors: instance
// i's preferred master is director i mod n, the next one 10 lower, and so
// on (all distinct, so there is one rightful master).
func priority(inst, dir, n int) int { return 200 - 10*((dir-inst%n+n)%n) }

// minPriority is the lowest priority any director has: its Skew_Time is the
// longest.
func minPriority(n int) int { return 200 - 10*(n-1) }

// conf is director d's keepalived.conf: VRRPv3 at advert, every instance
// with its VIP, a virtual route and a virtual rule, all BACKUP at start
// with preemption (the default); with refresh > 0 a master repeats its
// gratuitous ARPs every refresh seconds (garp_master_refresh).
func conf(d, n int, insts []vrrpInst, advert time.Duration, refresh int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n    router_id %s\n}\n", dirName(d))
	for i, in := range insts {
		fmt.Fprintf(&b, `vrrp_instance %s {
    state BACKUP
    interface %s
    virtual_router_id %d
    priority %d
    advert_int %s
    version 3
    virtual_ipaddress {
        %s/24 dev %s
    }
    virtual_routes {
        %s dev %s
    }
    virtual_rules {
        from %s/32 table %d
    }
`, in.name, iface, in.vrid, priority(i, d, n), seconds(advert), in.vip, iface, in.route, iface, in.vip, in.table)
		if refresh > 0 {
			fmt.Fprintf(&b, "    garp_master_refresh %d\n", refresh)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// seconds writes d as keepalived.conf's advert_int does.
func seconds(d time.Duration) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", d.Seconds()), "0"), ".")
}

// director is one director's Tandem, restarted as the schedule says.
type director struct {
	idx    int
	node   string
	addr   netip.Addr
	conf   string
	socket string

	// busy is held by the fault that involves the director, until it has
	// healed: a restart can outlast the scheduled end, and the next
	// fault on the director then waits for it.
	busy sync.Mutex

	mu    sync.Mutex
	proc  *lab.Proc
	procs []*lab.Proc // every run, for the logs
}

func (d *director) current() *lab.Proc {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// start runs Tandem and returns once its status socket answers.
func (d *director) start(ctx context.Context, l *lab.Lab, bin string) error {
	p, err := l.Start(d.node, bin, "run", "-f", d.conf, "--socket", d.socket, "--log-format", "text")
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.proc = p
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		fctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := api.Fetch(fctx, d.socket)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s: tandem exited at start (%v):\n%s", d.node, p.Wait(), tail(p))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: status socket not answering 15 s after start: %v", d.node, err)
		}
	}
}

// saveLogs writes the output of every Tandem the director ran into dir,
// NODE-N.log, before the lab (and its log directory) goes away.
func (d *director) saveLogs(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, p := range d.procs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", d.node, i+1)), []byte(p.Output()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// tail is the end of a process's output, for error messages.
func tail(p *lab.Proc) string {
	lines := strings.SplitAfter(p.Output(), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "")
}

// serve answers every connection to node's servePort with the node's name.
func serve(l *lab.Lab, node string) (stop func(), err error) {
	return l.Serve(node, fmt.Sprintf("0.0.0.0:%d", servePort), func(c net.Conn) {
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write([]byte(node))
	})
}

// nftTable names the tables the faults add; deleting them heals.
func nftTable(k kind) string { return "chaos_" + string(k) }

// dropFrom makes node drop every IPv4 packet that comes from one of peers
// (its VRRP adverts included): with the same in the peers, those
// directors no longer hear one another while the client still reaches
// all of them.
func dropFrom(l *lab.Lab, node string, peers []netip.Addr) error {
	return nftApply(l, node, func(c *nftables.Conn, tab *nftables.Table) {
		ch := c.AddChain(&nftables.Chain{Name: "in", Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		for _, p := range peers {
			c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, // saddr
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.AsSlice()},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
	}, split)
}

// dropRandom makes node drop percent% of the IPv4 packets it receives and
// sends, at random (netem is not in this kernel; nftables' numgen is).
func dropRandom(l *lab.Lab, node string, percent int) error {
	return nftApply(l, node, func(c *nftables.Conn, tab *nftables.Table) {
		for _, hook := range []*nftables.ChainHook{nftables.ChainHookInput, nftables.ChainHookOutput} {
			ch := c.AddChain(&nftables.Chain{Name: fmt.Sprintf("h%d", *hook), Table: tab, Type: nftables.ChainTypeFilter,
				Hooknum: hook, Priority: nftables.ChainPriorityFilter})
			c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: []expr.Any{
				&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
				// numgen writes a host-endian u32; cmp's lt compares
				// bytes, so make it big-endian first.
				&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
				&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binary.BigEndian.AppendUint32(nil, uint32(percent))},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
	}, loss)
}

func nftApply(l *lab.Lab, node string, build func(*nftables.Conn, *nftables.Table), k kind) error {
	err := l.Do(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable(k)})
		build(c, tab)
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("%s: nftables %s: %w", node, nftTable(k), err)
	}
	return nil
}

// nftDelete removes what dropFrom or dropRandom added.
func nftDelete(l *lab.Lab, node string, k kind) error {
	err := l.Do(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable(k)})
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("%s: delete nftables %s: %w", node, nftTable(k), err)
	}
	return nil
}

// stressNG finds Debian's stress-ng, "" when it is not installed.
func stressNG() string {
	for _, p := range []string{"/usr/bin/stress-ng", "/usr/local/bin/stress-ng"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// scratch makes the run's directory for configurations and sockets.
func scratch(n int, insts []vrrpInst, advert time.Duration, refresh int) (string, []*director, error) {
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		return "", nil, err
	}
	y := layout(n)
	var ds []*director
	for i := range n {
		d := &director{idx: i, node: dirName(i), addr: y.Directors[i].Addr,
			conf: filepath.Join(dir, dirName(i)+".conf"), socket: filepath.Join(dir, dirName(i)+".sock")}
		if err := os.WriteFile(d.conf, []byte(conf(i, n, insts, advert, refresh)), 0o644); err != nil {
			return dir, nil, errors.Join(err, os.RemoveAll(dir))
		}
		ds = append(ds, d)
	}
	return dir, ds, nil
}
