package lab

import (
	"fmt"
	"net"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// ForXDP prepares l for an XDP program on node that forwards frames
// (XDP_TX, XDP_REDIRECT) out of its ports on switches, as real NICs need
// nothing for: a veth transmits such frames only to a peer that runs an
// XDP program, so the peers (the switch's ports) get one that passes
// everything; and hosts compute their own TCP/UDP checksums (ethtool -K
// eth0 tx off), since a veth leaves them to be completed later, which a
// frame forwarded by XDP never is. Undone at the end of t; skips t
// without ethtool.
func (l *Lab) ForXDP(t testing.TB, node string, switches []string, hosts ...string) {
	t.Helper()
	ethtool, err := exec.LookPath("ethtool")
	if err != nil {
		t.Skip("ethtool not found (Debian package ethtool): needed to turn off the veths' checksum offload")
	}
	for _, n := range hosts {
		err := l.Do(n, func() error {
			if out, err := exec.Command(ethtool, "-K", "eth0", "tx", "off").CombinedOutput(); err != nil {
				return fmt.Errorf("ethtool: %v: %s", err, out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}}) // XDP_PASS
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pass.Close() })
	for _, sw := range switches {
		err := l.DoPorts(node, sw, func(ports []string) error {
			for _, p := range ports {
				ifc, err := net.InterfaceByName(p)
				if err != nil {
					return err
				}
				ln, err := link.AttachXDP(link.XDPOptions{Program: pass, Interface: ifc.Index, Flags: link.XDPDriverMode})
				if err != nil {
					return err
				}
				t.Cleanup(func() { ln.Close() })
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
