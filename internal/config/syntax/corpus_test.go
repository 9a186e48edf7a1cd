package syntax

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const corpusDir = "../../../../shared/corpus"

// TestCorpus parses keepalived's own sample configurations and the seed
// configurations: none may give a syntax diagnostic (bad-seed002 is bad only
// in meaning), and each must give the expected top-level keywords.
func TestCorpus(t *testing.T) {
	want := map[string][]string{
		"keepalived-samples/keepalived.conf.HTTP_GET.port":         {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.IPv6":                  {"global_defs", "virtual_server", "virtual_server_group"},
		"keepalived-samples/keepalived.conf.PING_CHECK":            {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.SMTP_CHECK":            {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.SSL_GET":               {"global_defs", "virtual_server", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.UDP_CHECK":             {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.conditional_conf":      {"net_namespace", "vrrp_instance", "vrrp_script"},
		"keepalived-samples/keepalived.conf.fwmark":                {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.inhibit":               {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.misc_check":            {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.misc_check_arg":        {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.quorum":                {"virtual_server"},
		"keepalived-samples/keepalived.conf.sample":                {"global_defs", "virtual_server", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.sample.in":             {"global_defs", "virtual_server", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.status_code":           {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.track_interface":       {"global_defs", "static_routes", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.virtual_server_group":  {"global_defs", "virtual_server", "virtual_server_group"},
		"keepalived-samples/keepalived.conf.virtualhost":           {"global_defs", "virtual_server"},
		"keepalived-samples/keepalived.conf.vrrp":                  {"global_defs", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.vrrp.localcheck":       {"vrrp_instance", "vrrp_script"},
		"keepalived-samples/keepalived.conf.vrrp.lvs_syncd":        {"virtual_server", "vrrp_instance", "vrrp_sync_group"},
		"keepalived-samples/keepalived.conf.vrrp.routes":           {"global_defs", "static_routes", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.vrrp.rules":            {"global_defs", "static_rules", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.vrrp.scripts":          {"vrrp_instance", "vrrp_sync_group"},
		"keepalived-samples/keepalived.conf.vrrp.static_ipaddress": {"global_defs", "static_ipaddress", "vrrp_instance"},
		"keepalived-samples/keepalived.conf.vrrp.sync":             {"vrrp_instance", "vrrp_sync_group"},
		"seed-configs/bad-seed002-mcast-typo.conf":                 {"global_defs", "virtual_server", "vrrp_instance"},
		"seed-configs/seed000-lvs-dr-backup.conf":                  {"virtual_server", "vrrp_instance"},
		"seed-configs/seed000-lvs-dr-master.conf":                  {"virtual_server", "vrrp_instance"},
		"seed-configs/seed001-options.conf":                        {"global_defs", "vrrp_instance"},
		"seed-configs/seed001-vip-ka1.conf":                        {"global_defs", "vrrp_instance"},
		"seed-configs/seed001-vip-ka2.conf":                        {"global_defs", "vrrp_instance"},
		"seed-configs/seed002-lvs-dr-http-backup.conf":             {"global_defs", "virtual_server", "vrrp_instance"},
		"seed-configs/seed002-lvs-dr-http-master.conf":             {"global_defs", "virtual_server", "vrrp_instance"},
		"seed-configs/seed003-lvs-dr.conf":                         {"virtual_server", "vrrp_instance"},
		"seed-configs/seed003-lvs-nat.conf":                        {"virtual_server"},
		"seed-configs/seed003-nginx-ha-backup.conf":                {"global_defs", "vrrp_instance", "vrrp_script"},
		"seed-configs/seed003-nginx-ha-master.conf":                {"global_defs", "vrrp_instance", "vrrp_script"},
		"seed-configs/seed004-lvs-dr-backup.conf":                  {"global_defs", "virtual_server", "vrrp_instance"},
		"seed-configs/seed004-lvs-dr-master.conf":                  {"global_defs", "virtual_server", "vrrp_instance"},
	}
	if _, err := os.Stat(corpusDir); err != nil {
		t.Skipf("corpus not available: %v", err)
	}
	for _, sub := range []string{"keepalived-samples", "seed-configs"} {
		names, err := filepath.Glob(filepath.Join(corpusDir, sub, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range names {
			rel := sub + "/" + filepath.Base(path)
			if _, ok := want[rel]; !ok {
				t.Errorf("%s: new corpus file, add it to the test", rel)
			}
		}
	}
	for rel, kws := range want {
		t.Run(rel, func(t *testing.T) {
			ns, ds := ParseFile(filepath.Join(corpusDir, rel), Options{ConfigID: "high"})
			if len(ds) != 0 {
				t.Errorf("diagnostics: %v", ds)
			}
			var got []string
			for _, n := range ns {
				if !slices.Contains(got, n.Keyword.Text) {
					got = append(got, n.Keyword.Text)
				}
			}
			slices.Sort(got)
			if d := cmp.Diff(kws, got); d != "" {
				t.Errorf("top-level keywords (-want +got):\n%s", d)
			}
		})
	}
}

// find returns the nodes with the keyword, depth first.
func find(ns []*Node, kw string) []*Node {
	var out []*Node
	for _, n := range ns {
		if n.Keyword.Text == kw {
			out = append(out, n)
		}
		out = append(out, find(n.Block, kw)...)
	}
	return out
}

func TestCorpusDetails(t *testing.T) {
	if _, err := os.Stat(corpusDir); err != nil {
		t.Skipf("corpus not available: %v", err)
	}
	cond := filepath.Join(corpusDir, "keepalived-samples/keepalived.conf.conditional_conf")
	for _, c := range []struct {
		id, priority, ns string
		col              int
	}{{"high", "170", "high", 7}, {"low", "85", "low", 6}} {
		ns, ds := ParseFile(cond, Options{ConfigID: c.id})
		if len(ds) != 0 {
			t.Fatalf("%s: %v", c.id, ds)
		}
		p := find(ns, "priority")
		if len(p) != 1 || len(p[0].Args) != 1 || p[0].Args[0].Text != c.priority || p[0].Keyword.Pos.Col != c.col {
			t.Errorf("%s: priority nodes %v", c.id, dumpNodes(p))
		}
		if n := find(ns, "net_namespace"); len(n) != 1 || n[0].Args[0].Text != c.ns {
			t.Errorf("%s: net_namespace %v", c.id, dumpNodes(n))
		}
	}
	ns, _ := ParseFile(cond, Options{ConfigID: "other"})
	if p := find(ns, "priority"); len(p) != 0 {
		t.Errorf("other: priority nodes %v", dumpNodes(p))
	}

	ns, _ = ParseFile(filepath.Join(corpusDir, "seed-configs/seed000-lvs-dr-master.conf"), Options{})
	if rs := find(ns, "real_server"); len(rs) != 2 || !rs[0].HasBlock || len(rs[0].Args) != 2 {
		t.Errorf("seed000 real_server nodes: %s", dumpNodes(rs))
	}
	if vip := find(ns, "virtual_ipaddress"); len(vip) != 1 || len(vip[0].Block) == 0 {
		t.Errorf("seed000 virtual_ipaddress: %s", dumpNodes(vip))
	}
}
