package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tandem/internal/lab"
)

// guestModules are the kernel modules the guest loads, after their
// dependencies (see moduleOrder). The guest has no modprobe for the kernel
// to call, so everything is loaded up front: crc32c_generic first, because
// libcrc32c (pulled in by nf_conntrack, which ip_vs needs) asks the crypto
// API for "crc32c"; every ip_vs scheduler, which the kernel would otherwise
// request as ip_vs_<name> when a service names it (Debian 6.1 has no
// ip_vs_twos); ip_vs_pe_sip, the SIP persistence engine (it pulls in
// nf_conntrack_sip); veth and bridge for the test labs; xfrm_user and nfnetlink
// because vishvananda/netlink opens NETLINK_XFRM and NETLINK_NETFILTER
// sockets next to NETLINK_ROUTE in every handle the labs use; ipvlan for
// use_ipvlan's test (internal/netio TestIPVLANLifecycle); ipip, ip6_tunnel
// and fou (with tunnel4, tunnel6, ip_tunnel, udp_tunnel and
// ip6_udp_tunnel from modules.dep) for the LVS-TUN real servers
// (internal/realserver, and TestTUNForwarding in internal/lvs/ipvs).
var guestModules = []string{
	"crc32c_generic", "veth", "bridge", "xfrm_user", "nfnetlink",
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
	"ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_fo", "ip_vs_ovf", "ip_vs_mh",
	"ip_vs_pe_sip", "ipvlan", "ipip", "ip6_tunnel", "fou",
}

// guestTimeout bounds one boot plus the test run in TCG. A healthy run
// takes well under a minute (see the package documentation).
const guestTimeout = 9 * time.Minute

// TestIPVSInVM runs the internal/lvs/ipvs tests inside a Debian kernel
// booted under qemu, since neither this machine's kernel nor CI's has IPVS.
func TestIPVSInVM(t *testing.T) {
	tools := requireTools(t)
	cache := cacheDir(t)

	start := time.Now()
	kern, err := debianKernel(t, cache, tools.busybox)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s ready in %v (cache %s)", kern.version, time.Since(start).Round(time.Millisecond), cache)

	work := t.TempDir()
	start = time.Now()
	initrd := filepath.Join(work, "initrd.gz")
	if err := buildInitramfs(t, initrd, kern, tools, work); err != nil {
		t.Fatal(err)
	}
	t.Logf("initramfs built in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	console, passed, err := boot(tools.qemu, kern.vmlinux, initrd)
	elapsed := time.Since(start).Round(time.Millisecond)
	if err != nil || !passed || testing.Verbose() {
		t.Logf("guest console:\n%s", console)
	}
	if err != nil {
		t.Fatalf("guest after %v: %v", elapsed, err)
	}
	if !passed {
		t.Fatalf("guest tests failed after %v (console above)", elapsed)
	}
	t.Logf("guest booted and passed in %v", elapsed)
}

// tools are the host programs the harness needs.
type tools struct {
	qemu, busybox, ipvsadm, ip, goCmd string
	keepalived                        string // optional: "" if the host has none
}

// requireTools skips the test unless it runs as root with every package
// from the package documentation installed. Root is for the default cache
// under /var/cache and keeps this test in the root-only CI job with the
// other kernel tests; nothing on the host is changed.
func requireTools(t *testing.T) tools {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("vm: not root (euid %d); skipping the IPVS-in-qemu test", os.Geteuid())
	}
	find := func(name, pkg string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			if p := filepath.Join(d, name); fileExists(p) {
				return p
			}
		}
		t.Skipf("vm: %s not found (install the Debian package %s); skipping the IPVS-in-qemu test", name, pkg)
		return ""
	}
	var tl tools
	tl.qemu = find("qemu-system-x86_64", "qemu-system-x86")
	tl.busybox = find("busybox", "busybox-static", "/bin", "/usr/bin")
	tl.ipvsadm = find("ipvsadm", "ipvsadm", "/usr/sbin", "/sbin")
	tl.ip = find("ip", "iproute2", "/usr/sbin", "/sbin", "/usr/bin", "/bin")
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "xz", "ldd"} {
		find(tool, "apt, dpkg, xz-utils and libc-bin")
	}
	// busybox must not need a dynamic loader: it is the guest's init,
	// and the only shell there.
	if out, err := exec.Command("ldd", tl.busybox).CombinedOutput(); err == nil && !bytes.Contains(out, []byte("not a dynamic")) && !bytes.Contains(out, []byte("statically linked")) {
		t.Skipf("vm: %s is dynamically linked; install busybox-static", tl.busybox)
	}
	tl.goCmd = find("go", "golang (or Go from go.dev)", "/usr/local/go/bin")
	if p, err := exec.LookPath("keepalived"); err == nil {
		tl.keepalived = p
	} else if p := "/usr/sbin/keepalived"; fileExists(p) {
		tl.keepalived = p
	}
	return tl
}

// cacheDir is where the Debian kernel is kept between runs:
// $TANDEM_VM_CACHE, else $XDG_CACHE_HOME/tandem-vm, else
// /var/cache/tandem-vm.
func cacheDir(t *testing.T) string {
	dir := os.Getenv("TANDEM_VM_CACHE")
	if dir == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			dir = filepath.Join(x, "tandem-vm")
		} else {
			dir = "/var/cache/tandem-vm"
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("vm: cache: %v", err)
	}
	return dir
}

// kernel is an unpacked Debian kernel package.
type kernel struct {
	pkg     string // linux-image-6.1.0-56-amd64
	version string // 6.1.0-56-amd64
	root    string // where the package is unpacked (lib/modules/<version>)
	vmlinux string // the uncompressed ELF kernel
}

// debianKernel returns the kernel that linux-image-amd64 currently depends
// on, downloading and unpacking it into cache the first time. The cache
// entry is complete once <pkg>/vmlinux exists: it is written last, after
// modules.dep, so an interrupted run is redone rather than half-reused.
func debianKernel(t *testing.T, cache, busybox string) (kernel, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return kernel{}, fmt.Errorf("vm: apt-cache depends linux-image-amd64: %w", err)
	}
	m := regexp.MustCompile(`Depends: (linux-image-(\d\S*-amd64))(-unsigned)?\n`).FindSubmatch(out)
	if m == nil {
		return kernel{}, fmt.Errorf("vm: no linux-image-<version>-amd64 among the dependencies of linux-image-amd64:\n%s", out)
	}
	k := kernel{pkg: string(m[1]) + string(m[3]), version: string(m[2])}
	k.root = filepath.Join(cache, k.pkg)
	k.vmlinux = filepath.Join(k.root, "vmlinux")
	if fileExists(k.vmlinux) {
		return k, nil
	}

	start := time.Now()
	tmp, err := os.MkdirTemp(cache, "download-")
	if err != nil {
		return kernel{}, err
	}
	defer os.RemoveAll(tmp)
	// apt-get download writes into the current directory as the _apt
	// user, and MkdirTemp made it private. It takes no lock, so it runs
	// alongside other apt users.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return kernel{}, err
	}
	dl := exec.Command("apt-get", "download", "-q", k.pkg)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return kernel{}, fmt.Errorf("vm: apt-get download %s: %w\n%s", k.pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return kernel{}, fmt.Errorf("vm: apt-get download %s left %v", k.pkg, debs)
	}
	t.Logf("downloaded %s in %v", filepath.Base(debs[0]), time.Since(start).Round(time.Millisecond))
	unpacked := filepath.Join(tmp, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], unpacked).CombinedOutput(); err != nil {
		return kernel{}, fmt.Errorf("vm: dpkg-deb -x %s: %w\n%s", debs[0], err, out)
	}
	// Debian generates modules.dep in the package's postinst; do it here
	// with busybox, which reads the modules' .modinfo like depmod(8).
	if out, err := exec.Command(busybox, "depmod", "-b", unpacked, k.version).CombinedOutput(); err != nil {
		return kernel{}, fmt.Errorf("vm: busybox depmod: %w\n%s", err, out)
	}
	vmlinuz := filepath.Join(unpacked, "boot", "vmlinuz-"+k.version)
	if err := extractVmlinux(vmlinuz, filepath.Join(unpacked, "vmlinux")); err != nil {
		return kernel{}, err
	}
	os.RemoveAll(k.root) // a partial entry of an interrupted run
	if err := os.Rename(unpacked, k.root); err != nil && !fileExists(k.vmlinux) {
		return kernel{}, err // not a concurrent run that finished first
	}
	t.Logf("unpacked %s into %s in %v", k.pkg, k.root, time.Since(start).Round(time.Millisecond))
	return k, nil
}

// extractVmlinux writes the ELF kernel inside a bzImage, as the kernel's
// scripts/extract-vmlinux does: find the xz stream's magic and decompress
// from there (--single-stream ignores what follows it). qemu boots the ELF
// through its PVH entry point, skipping the decompressor, which takes
// seconds under TCG.
func extractVmlinux(vmlinuz, out string) error {
	img, err := os.ReadFile(vmlinuz)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	off := bytes.Index(img, []byte("\xfd7zXZ\x00"))
	if off < 0 {
		return fmt.Errorf("vm: %s holds no xz stream (extract-vmlinux would try other compressors)", vmlinuz)
	}
	xz := exec.Command("xz", "-dc", "--single-stream")
	xz.Stdin = bytes.NewReader(img[off:])
	var stderr bytes.Buffer
	xz.Stderr = &stderr
	elf, err := xz.Output()
	if err != nil {
		return fmt.Errorf("vm: decompress %s: %w: %s", vmlinuz, err, stderr.Bytes())
	}
	if !bytes.HasPrefix(elf, []byte("\x7fELF")) {
		return fmt.Errorf("vm: %s: the xz stream is not an ELF kernel", vmlinuz)
	}
	return os.WriteFile(out, elf, 0o644)
}

// buildInitramfs writes a gzipped newc initramfs: busybox as /init's
// shell, the ipvs package's test binary, ipvsadm and iproute2's ip with
// their shared libraries, and the kernel modules the tests need.
func buildInitramfs(t *testing.T, out string, k kernel, tl tools, work string) error {
	start := time.Now()
	// The ipvs tests, use_ipvlan's, whose ipvlan driver this machine's
	// kernel lacks too, and the LVS-TUN real server's (no ipip, no fou).
	testBin, netioBin, rsBin := filepath.Join(work, "ipvs.test"), filepath.Join(work, "netio.test"), filepath.Join(work, "realserver.test")
	for bin, pkg := range map[string]string{testBin: "tandem/internal/lvs/ipvs", netioBin: "tandem/internal/netio", rsBin: "tandem/internal/realserver"} {
		build := exec.Command(tl.goCmd, "test", "-c", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Dir = moduleRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("vm: build the %s test binary: %w\n%s", pkg, err, out)
		}
	}
	t.Logf("built the test binaries in %v", time.Since(start).Round(time.Millisecond))
	// The sync daemon's failover test runs two tandems in the guest
	// (TANDEM_BIN, set by /init).
	tandemBin, err := lab.BuildTandem(work)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}

	files := map[string]string{ // guest path -> host path
		"/bin/busybox":     tl.busybox,
		"/sbin/ipvsadm":    tl.ipvsadm,
		"/sbin/ip":         tl.ip,
		"/ipvs.test":       testBin,
		"/netio.test":      netioBin,
		"/realserver.test": rsBin,
		"/tandem":          tandemBin,
	}
	libsOf := []string{tl.ipvsadm, tl.ip}
	// keepalived, if the host has it, for the ipvs package's
	// TestIPVSConnsKept (KEEPALIVED_BIN, set by /init).
	if tl.keepalived != "" {
		files["/sbin/keepalived"] = tl.keepalived
		libsOf = append(libsOf, tl.keepalived)
	}
	for _, bin := range libsOf {
		libs, err := sharedLibs(bin)
		if err != nil {
			return err
		}
		for _, l := range libs {
			files[l] = l
		}
	}
	mods, err := moduleOrder(k, guestModules)
	if err != nil {
		return err
	}
	modDir := filepath.Join("/lib/modules", k.version)
	var insmods []string
	for _, m := range mods {
		guest := filepath.Join(modDir, m)
		files[guest] = filepath.Join(k.root, guest)
		insmods = append(insmods, guest)
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	// Level 1: the archive is compressed once per run and decompressed
	// once per boot; better ratios save little of either.
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := newCPIO(gz)
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/etc"} {
		c.mkdirAll(d)
	}
	c.file("/init", 0o755, []byte(initScript(insmods)))
	// ipvsadm and ip look protocol names up here.
	c.file("/etc/protocols", 0o644, []byte("tcp 6 TCP\nudp 17 UDP\nsctp 132 SCTP\n"))
	for _, guest := range sortedKeys(files) {
		host := files[guest]
		data, err := os.ReadFile(host) // follows symlinks: the guest gets the file
		if err != nil {
			return fmt.Errorf("vm: initramfs: %w", err)
		}
		perm := uint32(0o644)
		if st, err := os.Stat(host); err == nil && st.Mode()&0o111 != 0 {
			perm = 0o755
		}
		c.file(guest, perm, data)
	}
	if err := c.close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil {
		t.Logf("initramfs: %d files, %.1f MiB compressed", len(files)+2, float64(st.Size())/(1<<20))
	}
	return f.Close()
}

// initScript is the guest's /init: mount the pseudo file systems, load the
// modules, run the tests, and report through qemu's isa-debug-exit port
// (0xf4): writing v makes qemu exit with (v<<1)|1, so 0 is a pass (qemu
// exits 1) and 1 a failure (qemu exits 3). A panic or a reboot ends qemu
// without either (panic=-1 and -no-reboot).
func initScript(insmods []string) string {
	return `#!/bin/busybox sh
/bin/busybox mkdir -p /usr/bin /usr/sbin /bin /sbin
/bin/busybox --install -s /bin
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
/sbin/ip link set lo up
t0=$(cut -d' ' -f1 /proc/uptime)
for m in ` + strings.Join(insmods, " ") + `; do
	insmod "$m" || echo "tandem-vm: insmod $m failed"
done
echo "tandem-vm: modules loaded at ${t0}s..$(cut -d' ' -f1 /proc/uptime)s"
cd /tmp
TANDEM_BIN=/tandem KEEPALIVED_BIN=$(command -v keepalived) /ipvs.test -test.v -test.timeout 420s
rc=$?
TANDEM_VM=1 /netio.test -test.v -test.timeout 60s -test.run '^TestIPVLANLifecycle$' || rc=1
/realserver.test -test.v -test.timeout 60s || rc=1
echo "tandem-vm: tests exited $rc at $(cut -d' ' -f1 /proc/uptime)s"
if [ "$rc" = 0 ]; then v='\000'; else v='\001'; fi
printf "$v" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo "tandem-vm: isa-debug-exit did not stop qemu"
poweroff -f
`
}

// sharedLibs lists the shared objects bin loads, the dynamic loader
// included, as ldd prints them.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("vm: ldd %s: %w", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, field := range strings.Fields(line) {
			if strings.HasPrefix(field, "/") {
				libs = append(libs, field)
				break
			}
		}
	}
	return libs, nil
}

// moduleOrder returns the modules' paths relative to lib/modules/<version>
// with every dependency before its users, from the modules.dep that
// debianKernel generated.
func moduleOrder(k kernel, names []string) ([]string, error) {
	dep, err := os.Open(filepath.Join(k.root, "lib/modules", k.version, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer dep.Close()
	deps := map[string][]string{} // path -> the paths it needs
	byName := map[string]string{} // module name -> path
	sc := bufio.NewScanner(dep)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		mod, needs, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(needs)
		byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, d := range deps[p] {
			visit(d)
		}
		order = append(order, p)
	}
	for _, n := range names {
		p, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("vm: kernel %s has no module %s", k.version, n)
		}
		visit(p)
	}
	return order, nil
}

// moduleName is the name of the module at path p: the file name without
// its .ko(.xz|.zst|.gz) suffix, dashes read as underscores as the kernel does.
func moduleName(p string) string {
	base := filepath.Base(p)
	base, _, _ = strings.Cut(base, ".ko")
	return strings.ReplaceAll(base, "-", "_")
}

// boot runs the guest and returns its console and whether it reported a
// pass. qemu is killed (by its pid, through the command's context) if the
// guest outlives guestTimeout.
func boot(qemu, vmlinux, initrd string) (console string, passed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), guestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024",
		"-kernel", vmlinux, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init",
		"-nographic", "-no-reboot", "-nic", "none", "-monitor", "none", "-serial", "stdio",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	runErr := cmd.Run()
	console = strings.ReplaceAll(out.String(), "\r\n", "\n")
	if ctx.Err() != nil {
		return console, false, fmt.Errorf("vm: qemu still running after %v, killed", guestTimeout)
	}
	var exit *exec.ExitError
	switch {
	case runErr == nil:
		return console, false, errors.New("vm: qemu exited 0: the guest stopped without reporting a result")
	case errors.As(runErr, &exit) && exit.ExitCode() == 1:
		return console, true, nil
	case errors.As(runErr, &exit) && exit.ExitCode() == 3:
		return console, false, nil
	}
	return console, false, fmt.Errorf("vm: qemu: %w", runErr)
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for !fileExists(filepath.Join(dir, "go.mod")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("vm: go.mod not found above the working directory")
		}
		dir = parent
	}
	return dir
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}
