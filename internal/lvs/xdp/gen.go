package xdp

// The XDP programs compiled by clang, and their Go bindings, are
// committed (bpf/xdp_lb.c: lb_bpfel.go, lb_bpfel.o; bpf/xdp_decap.c:
// decap_bpfel.go, decap_bpfel.o), so building Tandem needs no clang. Regenerate after changing the C source, with Debian's clang,
// llvm and libbpf-dev installed:
//
//	go generate ./internal/lvs/xdp
//
// TestGeneratedUpToDate regenerates them into a scratch directory with
// these lines and fails if the result differs from what is committed. The
// include directories are Debian's multiarch ones, where linux/types.h
// finds asm/types.h.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -strip llvm-strip -go-package xdp lb bpf/xdp_lb.c -- -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -strip llvm-strip -go-package xdp decap bpf/xdp_decap.c -- -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
