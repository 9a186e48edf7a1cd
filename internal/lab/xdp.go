package lab

import (
	"fmt"
	"net"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BPFFST mounts a BPF file system of the test's own in a temporary
// directory and returns it, so that nothing is pinned in the host's (and
// the test runs where none is mounted). Processes the lab starts see it:
// `ip netns exec` copies the mount table.
func BPFFST(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("cannot mount a BPF file system: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// XDPReadyT prepares the lab for an XDP data plane in directors: the
// hosts compute their own TCP/UDP checksums (checksum offload off on
// their interfaces: a veth leaves the checksum to be filled in later, which a
// frame forwarded by XDP never gets, as a NIC would have done it), and
// each director's ports on switches run a pass-through XDP program (a
// veth transmits XDP frames, XDP_TX and XDP_REDIRECT, only to a peer that
// runs XDP, which a physical NIC needs nothing of).
func (l *Lab) XDPReadyT(t testing.TB, hosts, directors, switches []string) {
	t.Helper()
	ethtool, err := exec.LookPath("ethtool")
	if err != nil {
		t.Skip("ethtool not found (Debian package ethtool): needed to turn off the veths' checksum offload")
	}
	for _, n := range hosts {
		err := l.Do(n, func() error {
			ifcs, err := net.Interfaces()
			if err != nil {
				return err
			}
			for _, ifc := range ifcs {
				if ifc.Flags&net.FlagLoopback != 0 {
					continue
				}
				if out, err := exec.Command(ethtool, "-K", ifc.Name, "tx", "off").CombinedOutput(); err != nil {
					return fmt.Errorf("ethtool on %s's %s: %v: %s", n, ifc.Name, err, out)
				}
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
	for _, d := range directors {
		for _, sw := range switches {
			_, detach, err := l.AttachXDPPorts(d, sw, pass)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(detach)
		}
	}
}

// AttachXDPPorts attaches prog, in native mode, to node's ports on switch
// sw (the bridge side of its veths) and returns them and a function that
// detaches it.
func (l *Lab) AttachXDPPorts(node, sw string, prog *ebpf.Program) ([]string, func(), error) {
	var links []link.Link
	detach := func() {
		for _, ln := range links {
			ln.Close()
		}
	}
	var names []string
	err := l.DoPorts(node, sw, func(ports []string) error {
		names = ports
		for _, p := range ports {
			ifc, err := net.InterfaceByName(p)
			if err != nil {
				return err
			}
			ln, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
			if err != nil {
				return fmt.Errorf("attach XDP to %s's port %s: %w", node, p, err)
			}
			links = append(links, ln)
		}
		return nil
	})
	if err != nil {
		detach()
		return nil, nil, err
	}
	return names, detach, nil
}
