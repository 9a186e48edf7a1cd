package api

import (
	"strings"
	"testing"
)

// TestWriteTextVMAC: `tandem status` names an instance's use_vmac
// interface beside its interface.
func TestWriteTextVMAC(t *testing.T) {
	st := Status{Instances: []InstanceStatus{
		{Name: "VI_1", State: "MASTER", VRID: 51, Interface: "eth0", VMAC: "vrrp.51", Priority: 100, EffectivePriority: 100},
		{Name: "VI_2", State: "BACKUP", VRID: 52, Interface: "eth1", Priority: 100, EffectivePriority: 100},
	}}
	var b strings.Builder
	if err := WriteText(&b, st, statusT0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 3 || !strings.Contains(lines[1], "eth0 (vmac vrrp.51)") || strings.Contains(lines[2], "vmac") {
		t.Errorf("status table does not show VI_1's vmac (only):\n%s", b.String())
	}
}
