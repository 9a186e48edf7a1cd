package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"tandem/internal/lab"
)

// TestVIPInterfaces: the interfaces that carry VIPs are the VRRP
// instances' own, their use_vmac interfaces, and the devs their
// addresses name, each once.
func TestVIPInterfaces(t *testing.T) {
	cfg := lab.ParseConfig(t, `vrrp_instance A {
  interface front
  virtual_router_id 1
  priority 100
  virtual_ipaddress {
    192.0.2.1/32
    192.0.2.2/32 dev wan
  }
  virtual_ipaddress_excluded {
    192.0.2.3/32 dev dmz
  }
}
vrrp_instance B {
  interface front
  virtual_router_id 2
  priority 100
  use_vmac vrrp.2
  virtual_ipaddress {
    192.0.2.4/32 dev wan
  }
}
`)
	if got, want := vipInterfaces(cfg), []string{"dmz", "front", "vrrp.2", "wan"}; !cmp.Equal(got, want) {
		t.Errorf("vipInterfaces = %v, want %v", got, want)
	}
}
