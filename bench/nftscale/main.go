// Command nftscale measures how the nftables data plane's programming time
// grows with the number of DR virtual services: it programs N services
// through the reconciler, as the daemon does, in a network namespace of
// its own, for each N of -sizes, and reports each time per service and
// against the first size's, measured in the same run (linear programming
// keeps the per-service time flat; the layout with one ingress chain per
// service grew it with N).
//
// Usage (root only: it builds a network namespace):
//
//	go run ./bench/nftscale [-sizes 1000,10000] [-dests 2] [-json]
//
// For each size, on a fresh table: program N services (each with -dests
// real servers out of a pool of 16 on the director's segment), reconcile
// again (nothing to do), change one real server's weight (one op among N
// services), read every service's counters (Counters, what `tandem status` does) and
// list the table's counters (`nft list counters`), then delete them all.
// The exit status is 0 when the largest size is programmed within -goal
// (5 s for 10,000 services, the target of issue 10), 3 when it is not, 1
// on an error, 2 on a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"tandem/internal/lab"
	"tandem/internal/lvs"
	"tandem/internal/lvs/nft"
)

func main() { os.Exit(run()) }

// result is one size's figures.
type result struct {
	Services int           `json:"services"`
	Program  time.Duration `json:"program_ns"`
	PerSvc   time.Duration `json:"program_per_service_ns"`
	Ratio    float64       `json:"program_ratio_to_first"` // Program / first size's Program
	Noop     time.Duration `json:"noop_reconcile_ns"`
	Update   time.Duration `json:"one_weight_change_ns"`
	Status   time.Duration `json:"stats_all_services_ns"`
	List     time.Duration `json:"list_counters_ns"`
	Delete   time.Duration `json:"delete_all_ns"`
}

func run() int {
	sizesFlag := flag.String("sizes", "1000,10000", "comma-separated numbers of DR services, in the order measured")
	dests := flag.Int("dests", 2, "real servers per service")
	goal := flag.Duration("goal", 5*time.Second, "programming time the largest size must stay within")
	asJSON := flag.Bool("json", false, "print the results as JSON on stdout")
	flag.Parse()
	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > 60000 {
			fmt.Fprintf(os.Stderr, "nftscale: -sizes: %q is not a number of services in 1..60000\n", f)
			return 2
		}
		sizes = append(sizes, n)
	}
	if *dests < 1 || *dests > 16 {
		fmt.Fprintln(os.Stderr, "nftscale: -dests must be in 1..16")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nftscale: needs root (it builds a network namespace)")
		return 1
	}
	if _, err := lab.Sweep(); err != nil {
		fmt.Fprintf(os.Stderr, "nftscale: sweep stale labs: %v\n", err)
	}
	// One director on a /16: real servers 10.64.1.1-16, VIPs in 10.65/16
	// and 10.66/16, all on its segment as LVS-DR wants; nothing answers,
	// nothing needs to: only programming is measured.
	l, err := lab.New(lab.Spec{Nodes: []lab.Node{{Name: "dir", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.64.0.1/10")}}}}}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "nftscale: %v\n", err)
		return 1
	}
	defer l.Close()
	ns, err := netns.GetFromPath(filepath.Join("/run/netns", l.NSName("dir")))
	if err != nil {
		fmt.Fprintf(os.Stderr, "nftscale: %v\n", err)
		return 1
	}
	defer ns.Close()

	var results []result
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "nftscale: %d services...\n", n)
		r, err := measure(int(ns), n, *dests)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nftscale: %d services: %v\n", n, err)
			return 1
		}
		results = append(results, r)
	}
	for i := range results {
		results[i].Ratio = results[i].Program.Seconds() / results[0].Program.Seconds()
	}
	report(results)
	if *asJSON {
		if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
			fmt.Fprintf(os.Stderr, "nftscale: %v\n", err)
			return 1
		}
	}
	last := results[len(results)-1]
	if last.Program > *goal {
		fmt.Fprintf(os.Stderr, "FAIL: %d services programmed in %v, goal %v\n", last.Services, last.Program.Round(time.Millisecond), *goal)
		return 3
	}
	fmt.Fprintf(os.Stderr, "PASS: %d services programmed in %v, goal %v\n", last.Services, last.Program.Round(time.Millisecond), *goal)
	return 0
}

// desired is n DR services, tcp VIP:80 with VIPs counted up from
// 10.65.0.0, each with dests real servers out of 10.64.1.1-16 (a rotating
// window, so services share servers as real pools do), weight 1.
func desired(n, dests int) (*lvs.Desired, error) {
	vss := make([]lvs.VirtualServer, n)
	base := netip.MustParseAddr("10.65.0.0").As4()
	for i := range vss {
		v := base
		v[1] += byte(i >> 16)
		v[2], v[3] = byte(i>>8), byte(i)
		vs := lvs.VirtualServer{Service: lvs.Service{ServiceKey: lvs.ServiceKey{Protocol: lvs.TCP, VIP: netip.AddrFrom4(v), Port: 80},
			Scheduler: lvs.WeightedRoundRobin, Method: lvs.DR}}
		for j := range dests {
			rs := netip.AddrFrom4([4]byte{10, 64, 1, byte(1 + (i+j)%16)})
			vs.Dests = append(vs.Dests, lvs.Dest{Addr: netip.AddrPortFrom(rs, 80), Weight: 1, Method: lvs.DR})
		}
		vss[i] = vs
	}
	return lvs.NewDesired(vss...)
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// measure programs n services into the namespace open as ns, on a fresh
// Kernel and table, and times each step.
func measure(ns, n, dests int) (result, error) {
	r := result{Services: n}
	k, err := nft.New(nft.WithNetNS(ns))
	if err != nil {
		return r, err
	}
	defer k.Close()
	if err := k.Flush(); err != nil {
		return r, err
	}
	want, err := desired(n, dests)
	if err != nil {
		return r, err
	}
	ctx := context.Background()
	all := func(lvs.ServiceKey) bool { return true }
	rec := lvs.NewReconciler(k, all)
	reconcile := func(d *lvs.Desired, wantOps int) error {
		rep, err := rec.Reconcile(ctx, d)
		if err == nil && len(rep.Ops) != wantOps {
			err = fmt.Errorf("reconcile sent %d ops, want %d", len(rep.Ops), wantOps)
		}
		return err
	}
	if r.Program, err = timed(func() error { return reconcile(want, n*(1+dests)) }); err != nil {
		return r, fmt.Errorf("program: %w", err)
	}
	r.PerSvc = r.Program / time.Duration(n)
	if r.Noop, err = timed(func() error { return reconcile(want, 0) }); err != nil {
		return r, fmt.Errorf("reconcile again: %w", err)
	}
	keys := want.Keys()
	vs, _ := want.Lookup(keys[n/2])
	vs.Dests[0].Weight = 2
	var vss []lvs.VirtualServer
	for _, key := range keys {
		v, _ := want.Lookup(key)
		if key == vs.Service.Key() {
			v = vs
		}
		vss = append(vss, v)
	}
	changed, err := lvs.NewDesired(vss...)
	if err != nil {
		return r, err
	}
	if r.Update, err = timed(func() error { return reconcile(changed, 1) }); err != nil {
		return r, fmt.Errorf("weight change: %w", err)
	}
	if r.Status, err = timed(func() error {
		all, err := k.Counters()
		if err != nil {
			return err
		}
		if len(all) != n {
			return fmt.Errorf("stats of %d services, want %d", len(all), n)
		}
		for key, st := range all {
			if len(st) != dests {
				return fmt.Errorf("%v: %d counters, want %d", key, len(st), dests)
			}
		}
		return nil
	}); err != nil {
		return r, fmt.Errorf("stats: %w", err)
	}
	if r.List, err = timed(func() error {
		c, err := nftables.New(nftables.WithNetNSFd(ns))
		if err != nil {
			return err
		}
		objs, err := c.GetObjects(&nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyNetdev})
		if err == nil && len(objs) != n*dests {
			err = fmt.Errorf("%d counters listed, want %d", len(objs), n*dests)
		}
		return err
	}); err != nil {
		return r, fmt.Errorf("list counters: %w", err)
	}
	if r.Delete, err = timed(func() error { return reconcile(nil, n) }); err != nil {
		return r, fmt.Errorf("delete: %w", err)
	}
	svcs, err := k.Services()
	if err == nil && len(svcs) != 0 {
		err = errors.New("services left after deleting them all")
	}
	return r, err
}

func report(rs []result) {
	fmt.Fprintf(os.Stderr, "%9s %10s %9s %8s %10s %10s %10s %10s %10s\n",
		"services", "program", "per svc", "ratio", "noop", "1 change", "stats all", "list ctrs", "delete all")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
	for _, r := range rs {
		fmt.Fprintf(os.Stderr, "%9d %10s %7.0fµs %7.1fx %10s %10s %10s %10s %10s\n", r.Services, ms(r.Program),
			float64(r.PerSvc)/float64(time.Microsecond), r.Ratio, ms(r.Noop), ms(r.Update), ms(r.Status), ms(r.List), ms(r.Delete))
	}
}
