package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedDir holds the seed configurations the layouts are made for (shared
// corpus, outside the repository).
const seedDir = "../../../shared/corpus/seed-configs"

var seedLayouts = []struct {
	name    string
	layout  Layout
	configs []string // globs in seedDir
}{
	{"seed000", Seed000(), []string{"seed000-*.conf"}},
	{"seed001", Seed001(), []string{"seed001-*.conf"}},
	{"seed002", Seed002(), []string{"seed002-*.conf"}},
	{"seed003 DR", Seed003DR(), []string{"seed003-lvs-dr.conf", "seed003-nginx-ha-*.conf"}},
	{"seed003 NAT", Seed003NAT(), []string{"seed003-lvs-nat.conf"}},
	{"seed004", Seed004(), []string{"seed004-*.conf"}},
}

var (
	ipv4RE    = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)
	ifaceRE   = regexp.MustCompile(`\b(?:interface|dev)\s+(\S+)`)
	trackRE   = regexp.MustCompile(`track_interface\s*\{([^}]*)\}`)
	commentRE = regexp.MustCompile(`[!#].*`)
)

// TestSeedLayoutsMatchConfigs checks, without root, that every seed
// configuration can run unmodified on its layout: each interface it
// names exists on every director, and each address it names is one the
// layout has (or a multicast group, or loopback).
func TestSeedLayoutsMatchConfigs(t *testing.T) {
	all, _ := filepath.Glob(filepath.Join(seedDir, "seed*.conf"))
	if len(all) == 0 {
		t.Skipf("seed configurations not found in %s", seedDir)
	}
	covered := map[string]bool{}
	for _, sl := range seedLayouts {
		spec := sl.layout.Spec()
		known := map[netip.Addr]bool{}
		for _, a := range sl.layout.VIPs {
			known[a] = true
		}
		for _, n := range spec.Nodes {
			for _, ifc := range n.Ifaces {
				for _, p := range ifc.Addrs {
					known[p.Addr()] = true
				}
			}
		}
		var files []string
		for _, g := range sl.configs {
			m, _ := filepath.Glob(filepath.Join(seedDir, g))
			files = append(files, m...)
		}
		if len(files) == 0 {
			t.Errorf("%s: no configuration matches %v", sl.name, sl.configs)
		}
		for _, f := range files {
			covered[f] = true
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			conf := commentRE.ReplaceAllString(string(b), "")
			var ifaces []string
			for _, m := range ifaceRE.FindAllStringSubmatch(conf, -1) {
				ifaces = append(ifaces, m[1])
			}
			for _, m := range trackRE.FindAllStringSubmatch(conf, -1) {
				ifaces = append(ifaces, strings.Fields(m[1])...)
			}
			for _, d := range sl.layout.Directors {
				node := spec.Nodes[slices.IndexFunc(spec.Nodes, func(n Node) bool { return n.Name == d.Name })]
				for _, name := range ifaces {
					if !slices.ContainsFunc(node.Ifaces, func(i Iface) bool { return i.Name == name }) {
						t.Errorf("%s: %s names interface %s, which director %s lacks", sl.name, filepath.Base(f), name, d.Name)
					}
				}
			}
			for _, s := range ipv4RE.FindAllString(conf, -1) {
				a, err := netip.ParseAddr(s)
				if err != nil || a.IsMulticast() || a.IsLoopback() {
					continue
				}
				if !known[a] {
					t.Errorf("%s: %s names %s, which the layout does not have", sl.name, filepath.Base(f), a)
				}
			}
		}
	}
	for _, f := range all {
		if !covered[f] {
			t.Errorf("no layout for %s", filepath.Base(f))
		}
	}
}

// TestSeedTopologies builds every seed layout and pings every address from
// every node on the same segment.
func TestSeedTopologies(t *testing.T) {
	RequireRoot(t)
	for _, sl := range seedLayouts {
		t.Run(sl.name, func(t *testing.T) {
			spec := sl.layout.Spec()
			start := time.Now()
			l := NewT(t, spec)
			t.Logf("built %d nodes in %v", len(spec.Nodes), time.Since(start))

			for _, to := range spec.Nodes {
				for _, ifc := range to.Ifaces {
					for _, from := range spec.Nodes {
						if from.Name == to.Name || !slices.ContainsFunc(from.Ifaces, func(i Iface) bool { return i.Switch == ifc.Switch }) {
							continue
						}
						for _, p := range ifc.Addrs {
							if err := l.Ping(from.Name, p.Addr(), 2*time.Second); err != nil {
								t.Error(err)
							}
						}
					}
				}
			}

			want := map[string]map[string]string{
				sl.layout.Directors[0].Name: {"net/ipv4/conf/all/send_redirects": "0", "net/ipv4/conf/" + sl.layout.Iface + "/send_redirects": "0"},
			}
			if sl.layout.NAT != nil {
				want[sl.layout.Directors[0].Name]["net/ipv4/ip_forward"] = "1"
				// The real servers answer the client through the
				// director: reaching its outside address proves the
				// default route.
				if err := l.Ping(sl.layout.Reals[0].Name, sl.layout.NAT.Outside[0], 2*time.Second); err != nil {
					t.Error(err)
				}
			} else if len(sl.layout.Reals) > 0 {
				want[sl.layout.Reals[0].Name] = map[string]string{
					"net/ipv4/conf/all/arp_ignore":                       "1",
					"net/ipv4/conf/all/arp_announce":                     "2",
					"net/ipv4/conf/" + sl.layout.Iface + "/arp_ignore":   "1",
					"net/ipv4/conf/" + sl.layout.Iface + "/arp_announce": "2",
				}
			}
			for node, kv := range want {
				for k, v := range kv {
					var got []byte
					err := l.Do(node, func() (err error) {
						got, err = os.ReadFile("/proc/sys/" + k)
						return err
					})
					if err != nil || strings.TrimSpace(string(got)) != v {
						t.Errorf("%s: %s = %q (%v), want %s", node, k, got, err, v)
					}
				}
			}
		})
	}
}
