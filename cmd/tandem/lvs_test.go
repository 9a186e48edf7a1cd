package main

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/api"
)

// TestPrintStats: `tandem lvs list --stats` prints each real server's
// packets and bytes from clients, and their sums per service, in
// ipvsadm -Ln --stats's layout.
func TestPrintStats(t *testing.T) {
	tb := api.Table{Dataplane: "xdp", Services: []api.TableService{{Protocol: "TCP", Address: "172.16.7.5:80", Scheduler: "wrr",
		Dests: []api.TableDest{
			{Address: "172.16.7.3:80", Forward: "Route", Weight: 3, Packets: 300, Bytes: 21000},
			{Address: "172.16.7.4:80", Forward: "Route", Weight: 1, Packets: 100, Bytes: 7000},
		}}}}
	var out bytes.Buffer
	if err := printStats(&out, tb); err != nil {
		t.Fatal(err)
	}
	want := `Tandem data plane: xdp
Prot LocalAddress:Port                InPkts      InBytes
  -> RemoteAddress:Port
TCP  172.16.7.5:80                       400        28000
  -> 172.16.7.3:80                       300        21000
  -> 172.16.7.4:80                       100         7000
`
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("lvs list --stats (-want +got):\n%s", d)
	}
}
