package config

import (
	"testing"
)

// TestAcceptedKeywordsTakeEffect covers the keywords issue 12 found parsed
// and then ignored: each now lands where a consumer reads it, or is a
// warning at its position saying why it changes nothing.
func TestAcceptedKeywordsTakeEffect(t *testing.T) {
	rs := func(checker string) string {
		return vsWith("  real_server 10.0.0.2 80 {\n" + checker + "  }\n")
	}
	tests := []struct {
		name  string
		src   string
		want  []wantDiag
		check func(t *testing.T, c *Config)
	}{
		{
			name: "static address without dev: default_interface",
			src:  "global_defs {\n  default_interface bond0\n}\nstatic_ipaddress {\n  192.0.2.1/24\n  192.0.2.2/24 dev eth3\n}\n",
			check: func(t *testing.T, c *Config) {
				if a, b := c.StaticAddresses[0].Dev, c.StaticAddresses[1].Dev; a != "bond0" || b != "eth3" {
					t.Errorf("devs %q %q, want bond0 eth3", a, b)
				}
			},
		},
		{
			name: "static address without dev or default_interface: eth0",
			src:  "static_ipaddress {\n  192.0.2.1/24\n}\n",
			check: func(t *testing.T, c *Config) {
				if d := c.StaticAddresses[0].Dev; d != "eth0" {
					t.Errorf("dev %q, want keepalived's eth0", d)
				}
			},
		},
		{
			name: "SSL_GET tls_compliant on the checker and on a url",
			src:  rs("    SSL_GET {\n      tls_compliant\n      url {\n        path /\n        tls_compliant\n      }\n      url {\n        path /b\n      }\n    }\n"),
			check: func(t *testing.T, c *Config) {
				h := c.VirtualServers[0].RealServers[0].Checkers[0].HTTP
				if !h.TLSCompliant || !h.URLs[0].TLSCompliant || h.URLs[1].TLSCompliant {
					t.Errorf("checker %v, urls %v %v; want true, true false", h.TLSCompliant, h.URLs[0].TLSCompliant, h.URLs[1].TLSCompliant)
				}
			},
		},
		{
			name: "HTTP_GET tls_compliant: no TLS, warned",
			src:  rs("    HTTP_GET {\n      tls_compliant\n      url {\n        path /\n      }\n    }\n"),
			want: []wantDiag{w(7, 7, "tls_compliant: HTTP_GET has no TLS")},
		},
		{
			name: "fast_recovery: what Tandem always does, warned",
			src:  rs("    HTTP_GET {\n      fast_recovery\n      url {\n        path /\n      }\n    }\n"),
			want: []wantDiag{w(7, 7, "fast_recovery: Tandem always checks all urls back to back")},
		},
		{
			name: "fast_recovery with a bad value is an error",
			src:  rs("    HTTP_GET {\n      fast_recovery maybe\n      url {\n        path /\n      }\n    }\n"),
			want: []wantDiag{e(7, 21, "maybe")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.conf", []byte(tt.src), Options{ConfigID: "x"})
			matchDiags(t, diags, tt.want)
			if tt.check != nil && !t.Failed() {
				tt.check(t, cfg)
			}
		})
	}
}
