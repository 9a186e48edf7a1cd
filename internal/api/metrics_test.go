package api

import "testing"

func TestMetricVIP(t *testing.T) {
	for _, tt := range []struct {
		vips []string
		want string
	}{
		{[]string{"192.0.2.100/24"}, "192.0.2.100"},
		// The order the directors list them in does not matter.
		{[]string{"192.0.2.20/32", "192.0.2.3/24"}, "192.0.2.3"},
		{[]string{"192.0.2.3/24", "192.0.2.20/32"}, "192.0.2.3"},
		{[]string{"2001:db8::20/64", "2001:db8::1f/64"}, "2001:db8::1f"},
		{[]string{"not an address", "fd00::1/64"}, "fd00::1"},
		{nil, ""},
	} {
		if got := metricVIP(tt.vips); got != tt.want {
			t.Errorf("metricVIP(%q) = %q, want %q", tt.vips, got, tt.want)
		}
	}
}
