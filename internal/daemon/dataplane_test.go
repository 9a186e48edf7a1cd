package daemon

import (
	"log/slog"
	"strings"
	"testing"

	"tandem/internal/lab"
	"tandem/internal/lvs/xdp"
)

// TestOpenKernelXDP: --dataplane xdp opens the XDP data plane, or fails
// saying why (here: a BPF file system to mount), never another plane.
func TestOpenKernelXDP(t *testing.T) {
	lab.RequireRoot(t)
	if _, _, _, err := openKernel("ebpf", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "nft, xdp or none") {
		t.Errorf("openKernel(ebpf): %v, want the list of data planes", err)
	}
	k, name, owns, err := openKernel(DataplaneXDP, slog.New(slog.DiscardHandler))
	if err != nil {
		if !strings.HasPrefix(err.Error(), "data plane xdp: lvs/xdp: ") {
			t.Fatalf("openKernel(xdp): %v", err)
		}
		t.Logf("the XDP data plane cannot open here: %v", err)
		return
	}
	defer k.Close()
	if _, ok := k.(*xdp.Kernel); !ok || name != DataplaneXDP || owns == nil {
		t.Errorf("openKernel(xdp) = %T %q", k, name)
	}
}
