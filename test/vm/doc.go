// Package vm runs the kernel IPVS backend's tests (internal/lvs/ipvs) for
// real, inside Debian's stock kernel booted under qemu, because neither the
// development machines' kernel nor CI's has IPVS; and use_ipvlan's
// (internal/netio TestIPVLANLifecycle, run with TANDEM_VM=1 so that it
// fails rather than skips without ipvlan), which lacks the ipvlan driver
// too; and internal/realserver's, whose LVS-TUN real servers need the
// ipip, ip6_tunnel and fou drivers that kernel lacks as well. It holds no
// code outside its test, TestIPVSInVM:
//
//	sudo go test ./test/vm/ -v
//
// The test is root-only and skips, naming the missing piece, unless it runs
// as root with qemu-system-x86_64, busybox (static), ipvsadm, iproute2's ip,
// apt-get/apt-cache/dpkg-deb, xz and ldd at hand. keepalived (Debian's
// keepalived) is optional: without it the guest skips the keepalived half
// of TestIPVSConnsKept (connections kept across a director crash, IPVS
// run by keepalived and by Tandem: the IPVS rows of bench/conns).
//
// # Steps
//
//  1. Kernel: `apt-cache depends linux-image-amd64` names the current
//     kernel package (linux-image-6.1.0-56-amd64 on bookworm today); the
//     first run fetches it with `apt-get download` (no install, nothing on
//     the host changes), unpacks it with `dpkg-deb -x`, generates
//     modules.dep with `busybox depmod -b DIR VERSION` (Debian does that in
//     the package's postinst), and extracts the ELF vmlinux from vmlinuz
//     the way scripts/extract-vmlinux does (the xz stream after its magic,
//     through `xz -dc --single-stream`). All of it lands in the cache,
//     <cache>/<package>/, vmlinux written last; later runs reuse it. The
//     cache is $TANDEM_VM_CACHE, else $XDG_CACHE_HOME/tandem-vm, else
//     /var/cache/tandem-vm; an entry takes ~465 MB (the whole module tree,
//     so that changing the module list never needs a new download). A new
//     Debian kernel gets a new entry; delete old ones by hand.
//  2. Initramfs: `CGO_ENABLED=0 go test -c` builds a static test binary of
//     internal/lvs/ipvs, and lab.BuildTandem the static tandem binary,
//     which /init hands to the tests as TANDEM_BIN (the sync daemon's
//     failover test runs two tandems); ipvsadm and ip, and keepalived if
//     the host has it (KEEPALIVED_BIN, for TestIPVSConnsKept), are
//     copied with the shared libraries and loader ldd lists (keepalived's
//     take the initramfs from 9 to 45 MiB), busybox-static is the shell and init,
//     and guestModules with their dependencies (in modules.dep order) are
//     added. The harness writes the newc cpio itself and gzips it (9 MiB).
//  3. Boot: qemu-system-x86_64 -accel tcg (the nested KVM here cannot run
//     a stock kernel) boots vmlinux directly through its PVH entry point,
//     skipping the decompressor, with -no-reboot -nic none, panic=-1 and
//     -device isa-debug-exit. /init mounts proc, sysfs, devtmpfs and tmpfs
//     on /run and /tmp, insmods the modules (crc32c_generic first: there
//     is no modprobe for libcrc32c to ask for it), and runs the test binary
//     with -test.v. It writes the result to I/O port 0xf4 through /dev/port:
//     0 makes qemu exit 1 (pass), 1 makes it exit 3 (fail). qemu is killed
//     if the guest runs longer than guestTimeout.
//  4. Report: the guest's serial console is printed on failure (and with
//     -v); qemu's exit status decides pass or fail.
//
// The guest runs the tests with a 420 s timeout; the sync daemon tests
// add ~25-35 s to the ipvs tests' 9-10 s (their VRRP failover and the
// 2 s sync flushes), and TestIPVSConnsKept 100-130 s (six labs, 200
// connections each, VRRP at advert_int 1), so the whole test now takes
// 3-3.5 min (guest 187 s at load average 15-20).
//
// Inside the guest the ipvs tests build their namespaces with
// internal/lab (bridge, veths, client, director, real servers), compare
// the backend's reading of the kernel with Debian's `ipvsadm -Ln`, and send
// NAT, DR and TUN traffic through IPVS; see internal/lvs/ipvs. The TUN
// test (IPIP and GUE to real servers behind a router, prepared by
// internal/realserver and by the tandem binary's `realserver up --tun`)
// and the realserver tests (up, status, down --tun with IPv4 and IPv6 VIPs
// over GUE) add to the guest's time: 4.7 s and 1.2 s in a run where
// TestDRForwarding took 2.3 s (before TestTUNForwarding ran the binary);
// 18.7 s and 14 s with the binary's three commands, at load average 18,
// where TestDRForwarding took 6.3 s. Building realserver.test adds 1-3 s
// on the host.
//
// # Measured times
//
// On this machine (2 vCPUs, TCG, shared with other builds, so the upper
// ends are under load), kernel 6.1.0-56-amd64:
//
//	download the .deb (~70 MB)                    1.7-2.5 s  (first run only)
//	dpkg-deb -x, depmod, extract vmlinux          10-17 s    (first run only)
//	apt-cache depends (cached kernel)             0.8-2.3 s
//	go test -c, Go build cache warm / cold        0.8-2 s / 11 s
//	write the initramfs (44 files, 9 MiB gz)      0.3-0.8 s
//	kernel boot to /init (guest uptime)           2.2-4.7 s
//	insmod of ~25 modules                         0.3-0.8 s
//	ipvs tests in the guest                       9-10 s (each of the three
//	                                              forwarding tests waits ~2 s
//	                                              for IPVS's counters)
//	qemu start to exit                            14-20 s (guest: 13-16 s)
//	whole test, cache warm / cold                 18-25 s / 23-42 s
//
// # CI
//
// As root, on Debian bookworm:
//
//	apt-get update
//	apt-get install -y --no-install-recommends qemu-system-x86 busybox-static ipvsadm iproute2 xz-utils
//
// (xz-utils and libc-bin, for xz and ldd, are part of every Debian system.)
//
// The kernel package is not installed: the test downloads it itself with
// `apt-get download` (so the apt lists must be current) into the cache
// above; keep /var/cache/tandem-vm between CI runs to skip the download.
package vm
