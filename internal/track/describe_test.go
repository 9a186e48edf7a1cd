package track

import "testing"

func TestDescribe(t *testing.T) {
	for _, tt := range []struct {
		u    Update
		want string
	}{
		{Update{Kind: KindScript, Name: "chk_nginx"}, "track_script chk_nginx failed"},
		{Update{Kind: KindScript, Name: "chk_nginx", OK: true}, "track_script chk_nginx ok"},
		{Update{Kind: KindInterface, Name: "eth1"}, "track_interface eth1 down"},
		{Update{Kind: KindInterface, Name: "eth1", OK: true}, "track_interface eth1 up"},
		{Update{Kind: KindFile, Name: "f", Value: 3}, "track_file f = 3"},
		{Update{Kind: KindFile, Name: "f", OK: true}, "track_file f = 0"},
		{Update{Kind: KindProcess, Name: "nginx", Value: 1}, "track_process nginx below quorum (1 running)"},
		{Update{Kind: KindProcess, Name: "nginx", OK: true, Value: 2}, "track_process nginx running (2)"},
		{Update{Kind: KindBFD, Name: "peer"}, "bfd peer down"},
		{Update{Kind: KindBFD, Name: "peer", OK: true}, "bfd peer up"},
	} {
		if got := tt.u.Describe(); got != tt.want {
			t.Errorf("%+v.Describe() = %q, want %q", tt.u, got, tt.want)
		}
	}
}
