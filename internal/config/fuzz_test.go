package config

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics and that whatever parses without
// error survives the canonical printer: parse(fmt(parse(x))) == parse(x).
func FuzzParse(f *testing.F) {
	for _, c := range fuzzCorpus(f) {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse("fuzz.conf", src, fuzzOpts)
		if diags.HasErrors() {
			return
		}
		var b bytes.Buffer
		if err := Format(&b, cfg); err != nil {
			t.Fatalf("Format: %v", err)
		}
		cfg2, diags2 := Parse("fmt.conf", b.Bytes(), fuzzOpts)
		if diags2.HasErrors() {
			t.Fatalf("formatted text does not parse: %v\ninput:\n%s\nformatted:\n%s", diags2, src, b.String())
		}
		if diff := cmp.Diff(dump(t, cfg), dump(t, cfg2)); diff != "" {
			t.Fatalf("round trip differs (-parse(x) +parse(fmt)):\n%s\ninput:\n%s\nformatted:\n%s", diff, src, b.String())
		}
	})
}

// fuzzOpts make ${_RANDOM} deterministic, so that a failure reproduces.
var fuzzOpts = Options{ConfigID: "x", Random: func(lo, _ uint64) uint64 { return lo }}

// fuzzCorpus is every corpus file (when the shared corpus is there) and a
// few small configurations.
func fuzzCorpus(f *testing.F) [][]byte {
	out := [][]byte{
		[]byte(vi),
		[]byte("global_defs {\n  router_id r1\n  vrrp_version 3\n}\n" + vi),
		[]byte(vsWith("  real_server 10.0.1.1 80 {\n    HTTP_GET {\n      url {\n        path /\n        status_code 200-299\n      }\n    }\n  }\n")),
		[]byte("vrrp_script chk {\n  script \"/bin/check 'a b'\"\n  weight -10 reverse\n}\n"),
		[]byte("$P=1 \\\n# c\n  2\nvrrp_script chk {\n  script \"${_PWD}/chk ${_RANDOM 1 9} ${_INSTANCE} $U\"\n  ${_HASH} weight 5\n}\n" + vsWith("  alpha on\n  persistence_timeout 9\n  persistence_granularity 255.0.255.0\n")),
		[]byte("virtual_server_group G {\n  10.0.0.1-9 80\n  fwmark 3\n  fwmark 4 inet\n}\nvirtual_server group G {\n  lb_algo sh\n  sh-port\n}\n"),
		[]byte("static_routes {\n  src 10.0.0.1 10.1.0.0/16 via 10.0.0.254 dev eth0 metric 5\n}\nstatic_rules {\n  from 10.0.0.0/8 table 100 priority 7\n}\n"),
	}
	seeds, err := globCorpus()
	if err == nil {
		for _, p := range seeds {
			out = append(out, readFile(f, p))
		}
	}
	return out
}
