package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDebVersion(t *testing.T) {
	commit := time.Date(2026, 12, 6, 0, 33, 5, 0, time.UTC)
	for _, c := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3.dirty"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty"},
		// Untagged: git describe gives the hash, which can start with a digit.
		{"1ff4f77", "0~git20261206003305.1ff4f77"},
		{"1ff4f77-dirty", "0~git20261206003305.1ff4f77.dirty"},
		{"abcdef0", "0~git20261206003305.1ff4f77"},
	} {
		if got := debVersion(c.describe, "1ff4f77", commit); got != c.want {
			t.Errorf("debVersion(%q) = %q, want %q", c.describe, got, c.want)
		}
	}
}

// output runs a command and returns its standard output and error; a
// failure to start, or a non-zero exit when mustSucceed, fails the test.
func output(t *testing.T, mustSucceed bool, env []string, name string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && mustSucceed {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// uncommentExample turns the example's commented-out blocks into real ones,
// so that the test checks what an operator gets by uncommenting them.
func uncommentExample(conf string) string {
	var out []string
	in := false
	for _, l := range strings.Split(conf, "\n") {
		if strings.HasPrefix(l, "# vrrp_instance ") || strings.HasPrefix(l, "# virtual_server ") {
			in = true
		}
		if in {
			l = strings.TrimPrefix(l, "# ")
			if l == "}" {
				in = false
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestPackage builds the package, reads its control data and file list,
// installs it with dpkg into an empty root holding only busybox, runs the
// binary, the unit's config wrapper and the example's check in a chroot
// there, renders every man page and loads the bash completion, then purges
// the package.
func TestPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: dpkg --root and chroot need root (sudo test/run)")
	}
	for prog, pkg := range map[string]string{"dpkg-deb": "dpkg", "dpkg": "dpkg", "chroot": "coreutils", "man": "man-db", "bash": "bash", "/bin/busybox": "busybox-static"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s not found: install Debian's %s", prog, pkg)
		}
	}
	deb, err := build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	binVersion, pkgVersion, _, err := versions(root)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "tandem_"+pkgVersion+"_amd64.deb" {
		t.Errorf("package file %s", deb)
	}

	// Control data: no dependency (the binary is static), no conflict
	// (keepalived may stay installed), the example config a conffile.
	info, _, _ := output(t, true, nil, "dpkg-deb", "-I", deb)
	for _, want := range []string{"\n Package: tandem\n", "\n Version: " + pkgVersion + "\n", "\n Architecture: amd64\n", "\n Section: net\n", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	for _, field := range []string{"Depends:", "Conflicts:", "Breaks:", "Replaces:"} {
		if strings.Contains(info, field) {
			t.Errorf("control data has %s:\n%s", field, info)
		}
	}
	if conffiles, _, _ := output(t, true, nil, "dpkg-deb", "-I", deb, "conffiles"); conffiles != "/etc/tandem/keepalived.conf\n" {
		t.Errorf("conffiles: %q", conffiles)
	}

	list, _, _ := output(t, true, nil, "dpkg-deb", "-c", deb)
	modes := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
		f := strings.Fields(l)
		modes[strings.TrimPrefix(f[len(f)-1], ".")] = f[0]
	}
	for path, mode := range map[string]string{
		"/usr/sbin/tandem":                                  "-rwxr-xr-x",
		"/lib/systemd/system/tandem.service":                "-rw-r--r--",
		"/etc/tandem/keepalived.conf":                       "-rw-r--r--",
		"/usr/share/man/man8/tandem.8.gz":                   "-rw-r--r--",
		"/usr/share/man/man8/tandem-run.8.gz":               "-rw-r--r--",
		"/usr/share/man/man8/tandem-lab-up.8.gz":            "-rw-r--r--",
		"/usr/share/man/man5/tandem-keepalived.conf.5.gz":   "-rw-r--r--",
		"/usr/share/bash-completion/completions/tandem":     "-rw-r--r--",
		"/usr/share/zsh/vendor-completions/_tandem":         "-rw-r--r--",
		"/usr/share/fish/vendor_completions.d/tandem.fish":  "-rw-r--r--",
		"/usr/share/doc/tandem/README.md":                   "-rw-r--r--",
		"/usr/share/doc/tandem/README.Debian":               "-rw-r--r--",
		"/usr/share/doc/tandem/copyright":                   "-rw-r--r--",
		"/usr/share/doc/tandem/docs/keepalived-compat.md":   "-rw-r--r--",
		"/usr/share/doc/tandem/docs/keepalived-keywords.md": "-rw-r--r--",
	} {
		if modes[path] != mode {
			t.Errorf("%s: mode %q in the package, want %q", path, modes[path], mode)
		}
	}
	if t.Failed() {
		return
	}

	// A clean root: busybox for the maintainer scripts' /bin/sh, an empty
	// dpkg database, then dpkg installs the package the way apt would.
	dir := t.TempDir()
	for _, d := range []string{"bin", "tmp", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	output(t, true, nil, "chroot", dir, "/bin/busybox", "--install", "-s", "/bin")
	// dpkg runs the maintainer scripts chrooted in dir, with its /bin/sh.
	output(t, true, nil, "dpkg", "--root="+dir, "--install", deb)
	status, _, _ := output(t, true, nil, "dpkg", "--root="+dir, "-s", "tandem")
	if !strings.Contains(status, "Status: install ok installed") {
		t.Errorf("dpkg -s tandem:\n%s", status)
	}

	in := func(mustSucceed bool, args ...string) (string, error) {
		t.Helper()
		stdout, stderr, err := output(t, mustSucceed, nil, "chroot", append([]string{dir}, args...)...)
		return stdout + stderr, err
	}
	if out, _ := in(true, "/usr/sbin/tandem", "version"); out != "tandem "+binVersion+"\n" {
		t.Errorf("tandem version: %q, want tandem %s", out, binVersion)
	}
	if out, _ := in(true, "/usr/sbin/tandem", "check", "-f", "/etc/tandem/keepalived.conf"); out != "" {
		t.Errorf("tandem check on the example says:\n%s", out)
	}
	example, err := os.ReadFile(filepath.Join(dir, "etc/tandem/keepalived.conf"))
	if err != nil {
		t.Fatal(err)
	}
	uncommented := uncommentExample(string(example))
	if !strings.Contains(uncommented, "\nvrrp_instance VI_1 {") || !strings.Contains(uncommented, "\nvirtual_server ") {
		t.Fatalf("the example has no commented-out vrrp_instance and virtual_server blocks:\n%s", uncommented)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp/example.conf"), []byte(uncommented), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := in(true, "/usr/sbin/tandem", "check", "-f", "/tmp/example.conf"); out != "" {
		t.Errorf("tandem check on the example's uncommented blocks says:\n%s", out)
	}

	// The unit's own commands: its ExecStartPre (the check ExecStart's
	// configuration gets) reads Tandem's file when it is there, else
	// keepalived's; ExecStart's program is in the package.
	unit, err := os.ReadFile(filepath.Join(dir, "lib/systemd/system/tandem.service"))
	if err != nil {
		t.Fatal(err)
	}
	var checkCmd, runCmd []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStartPre="); ok {
			checkCmd = strings.Fields(v)
		}
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			runCmd = strings.Fields(v)
		}
	}
	if len(checkCmd) < 2 || len(runCmd) < 2 || !slices.Contains(checkCmd, "check") || !slices.Contains(runCmd, "run") {
		t.Fatalf("the unit's ExecStartPre %q and ExecStart %q are not a check and a run", checkCmd, runCmd)
	}
	if fi, err := os.Stat(filepath.Join(dir, runCmd[0])); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("ExecStart's %s is not an executable of the package: %v", runCmd[0], err)
	}
	if out, _ := in(true, checkCmd...); out != "" {
		t.Errorf("%q says:\n%s", checkCmd, out)
	}
	if err := os.Rename(filepath.Join(dir, "etc/tandem/keepalived.conf"), filepath.Join(dir, "tmp/tandem.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc/keepalived"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/keepalived/keepalived.conf"), []byte("not_a_keyword\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := in(false, checkCmd...); err == nil || !strings.Contains(out, "/etc/keepalived/keepalived.conf:1:1: error:") {
		t.Errorf("%q without /etc/tandem/keepalived.conf: %v\n%s", checkCmd, err, out)
	}
	if err := os.Rename(filepath.Join(dir, "tmp/tandem.conf"), filepath.Join(dir, "etc/tandem/keepalived.conf")); err != nil {
		t.Fatal(err)
	}

	// Every page renders, without a warning from groff, with the NAME line
	// man-db indexes.
	pages, err := filepath.Glob(filepath.Join(dir, "usr/share/man/man*/*.gz"))
	if err != nil || len(pages) < 10 {
		t.Fatalf("man pages: %v %v", pages, err)
	}
	for _, page := range pages {
		name := strings.TrimSuffix(filepath.Base(page), ".gz")
		name = name[:strings.LastIndex(name, ".")]
		stdout, stderr, err := output(t, false, []string{"MANWIDTH=80", "LANG=C.UTF-8"}, "man", "--warnings", "-l", page)
		if err != nil || stderr != "" || !regexp.MustCompile(`\nNAME\n +`+regexp.QuoteMeta(name)+` +- `).MatchString(stdout) {
			t.Errorf("man -l %s: %v\n%s\n%s", filepath.Base(page), err, stderr, stdout)
		}
	}

	bashCompletion := filepath.Join(dir, "usr/share/bash-completion/completions/tandem")
	output(t, true, nil, "bash", "-n", bashCompletion)
	if out, _, _ := output(t, true, nil, "bash", "-c", `source "$1" && complete -p tandem`, "bash", bashCompletion); !strings.Contains(out, " tandem") {
		t.Errorf("the bash completion registers nothing for tandem: %q", out)
	}

	// Purge leaves nothing of the package, the conffile included, nor the
	// link "systemctl enable tandem" makes (postrm, chrooted in dir).
	wants := filepath.Join(dir, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/tandem.service", filepath.Join(wants, "tandem.service")); err != nil {
		t.Fatal(err)
	}
	output(t, true, nil, "dpkg", "--root="+dir, "--purge", "tandem")
	for _, path := range []string{"usr/sbin/tandem", "etc/tandem/keepalived.conf", "lib/systemd/system/tandem.service", "etc/systemd/system/multi-user.target.wants/tandem.service"} {
		if _, err := os.Lstat(filepath.Join(dir, path)); !os.IsNotExist(err) {
			t.Errorf("%s after purge: %v", path, err)
		}
	}
}
