package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"tandem/internal/check"
	"tandem/internal/track"
	"tandem/internal/vrrp"
)

// The enums the daemon logs (instance state, tracked object kind, health
// event kind) appear in the logs by name, in both formats `tandem run
// --log-format` offers; slog's JSON handler printed them as numbers.
func TestLogsEnumNames(t *testing.T) {
	for _, tt := range []struct {
		key  string
		v    fmt.Stringer
		want string
	}{
		{"state", vrrp.Master, "MASTER"},
		{"state", vrrp.Fault, "FAULT"},
		{"kind", track.KindInterface, "track_interface"},
		{"kind", track.KindScript, "vrrp_script"},
		{"event", check.RealServerDown, "real_server_down"},
		{"event", check.QuorumUp, "quorum_up"},
	} {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%T(%v).String() = %q, want %q", tt.v, tt.v, got, tt.want)
		}
		for format, wantField := range map[string]string{
			"json": fmt.Sprintf("%q:%q", tt.key, tt.want),
			"text": tt.key + "=" + tt.want,
		} {
			var b bytes.Buffer
			h := slog.Handler(slog.NewTextHandler(&b, nil))
			if format == "json" {
				h = slog.NewJSONHandler(&b, nil)
			}
			slog.New(h).Info("x", tt.key, tt.v)
			if !strings.Contains(b.String(), wantField) {
				t.Errorf("%s log of %T %s: %s; want %s", format, tt.v, tt.want, strings.TrimSpace(b.String()), wantField)
			}
		}
	}
}
