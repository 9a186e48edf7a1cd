// Command deb builds Tandem's Debian package: `go run ./packaging/deb`
// writes dist/tandem_VERSION_amd64.deb (packaging/README.md says what is
// in it). It builds the static binary itself, stamped with the version git
// describes, runs it to write the man pages and shell completions, so that
// they match the binary shipped, and packs it all with nfpm used as a Go
// library: nothing is downloaded but Go modules.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	dist := flag.String("dist", "dist", "directory the package is written to")
	flag.Parse()
	path, err := build(*dist)
	if err != nil {
		fmt.Fprintf(os.Stderr, "packaging/deb: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// run runs a command in dir and returns its standard output; a failure
// carries the command and its standard error.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// moduleRoot is the directory of go.mod, so that the program works from
// any directory of the checkout.
func moduleRoot() (string, error) {
	gomod, err := run(".", nil, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the tandem module")
	}
	return filepath.Dir(gomod), nil
}

// releaseTag is a release tag as git describes it: v1.2.3, or v1.2.3-4-gHASH
// for the fourth commit after it.
var releaseTag = regexp.MustCompile(`^v?([0-9]+\.[0-9][0-9A-Za-z.]*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)

// versions gives the binary's version (what `tandem version` prints: git
// describe's words), the package's (debVersion) and the commit's time.
func versions(root string) (binary, pkg string, mtime time.Time, err error) {
	binary, err = run(root, nil, "git", "describe", "--tags", "--always", "--dirty")
	if err != nil {
		return "", "", time.Time{}, err
	}
	stamp, err := run(root, nil, "git", "log", "-1", "--format=%ct %h")
	if err != nil {
		return "", "", time.Time{}, err
	}
	var secs int64
	var hash string
	if _, err := fmt.Sscan(stamp, &secs, &hash); err != nil {
		return "", "", time.Time{}, fmt.Errorf("git log: %q: %w", stamp, err)
	}
	mtime = time.Unix(secs, 0).UTC()
	return binary, debVersion(binary, hash, mtime), mtime, nil
}

// debVersion is the package version for what git describes, by Debian's
// rules (it starts with a digit; later versions sort later): a tag v1.2.3
// is 1.2.3, four commits after it 1.2.3+4.gHASH. Without a tag (describe
// gives the bare hash, which may start with a digit too) it is
// 0~gitDATE.HASH from the commit's time, so that later commits sort later
// and any release sorts after. Uncommitted changes add ".dirty".
func debVersion(describe, hash string, commit time.Time) string {
	dirty := ""
	if strings.HasSuffix(describe, "-dirty") {
		dirty = ".dirty"
	}
	switch m := releaseTag.FindStringSubmatch(describe); {
	case m != nil && m[2] == "":
		return m[1] + dirty
	case m != nil:
		return m[1] + "+" + m[2] + ".g" + m[3] + dirty
	}
	return "0~git" + commit.Format("20060102150405") + "." + hash + dirty
}

// gzipFile writes src gzipped (as Debian ships man pages) to dst, with no
// name or time in the header so that the package is reproducible.
func gzipFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	z, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := z.Write(data); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, b.Bytes(), 0o644)
}

// build makes the package in dist and returns its path.
func build(dist string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	binVersion, pkgVersion, mtime, err := versions(root)
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "tandem-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)

	bin := filepath.Join(stage, "tandem")
	if _, err := run(root, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+binVersion, "-o", bin, "./cmd/tandem"); err != nil {
		return "", err
	}

	var contents files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		contents = append(contents, &files.Content{Source: src, Destination: dst, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, MTime: mtime}})
	}
	pkgDir := filepath.Join(root, "packaging")
	add(bin, "/usr/sbin/tandem", "", 0o755)
	add(filepath.Join(pkgDir, "tandem.service"), "/lib/systemd/system/tandem.service", "", 0o644)
	add(filepath.Join(pkgDir, "keepalived.conf"), "/etc/tandem/keepalived.conf", files.TypeConfig, 0o644)

	// Man pages: section 8 from the binary, section 5 written by hand.
	manDir := filepath.Join(stage, "man")
	if _, err := run(root, nil, bin, "man", manDir); err != nil {
		return "", err
	}
	hand, err := filepath.Glob(filepath.Join(pkgDir, "man", "*.[0-9]"))
	if err != nil {
		return "", err
	}
	pages, err := filepath.Glob(filepath.Join(manDir, "*.8"))
	if err != nil {
		return "", err
	}
	for _, page := range append(pages, hand...) {
		gz := filepath.Join(stage, filepath.Base(page)+".gz")
		if err := gzipFile(page, gz); err != nil {
			return "", err
		}
		section := page[len(page)-1:]
		add(gz, "/usr/share/man/man"+section+"/"+filepath.Base(gz), "", 0o644)
	}

	// Shell completions, from cobra's generators in the binary.
	for _, c := range []struct{ shell, dst string }{
		{"bash", "/usr/share/bash-completion/completions/tandem"},
		{"zsh", "/usr/share/zsh/vendor-completions/_tandem"},
		{"fish", "/usr/share/fish/vendor_completions.d/tandem.fish"},
	} {
		out, err := run(root, nil, bin, "completion", c.shell)
		if err != nil {
			return "", err
		}
		file := filepath.Join(stage, "completion."+c.shell)
		if err := os.WriteFile(file, []byte(out+"\n"), 0o644); err != nil {
			return "", err
		}
		add(file, c.dst, "", 0o644)
	}

	// Documentation.
	doc := "/usr/share/doc/tandem/"
	add(filepath.Join(root, "README.md"), doc+"README.md", "", 0o644)
	add(filepath.Join(pkgDir, "README.md"), doc+"README.Debian", "", 0o644)
	add(filepath.Join(pkgDir, "copyright"), doc+"copyright", "", 0o644)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return "", err
	}
	for _, d := range docs {
		add(d, doc+"docs/"+filepath.Base(d), "", 0o644)
	}

	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "tandem",
		Arch:          "amd64",
		Platform:      "linux",
		Version:       pkgVersion,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "Tandem authors <tandem@localhost>",
		Description: "VRRP virtual IPs, health checks and load balancing from a keepalived.conf\n" +
			"Tandem is one static binary that does the job of keepalived and LVS:\n" +
			"directors share virtual IPs through VRRP, health-check real servers and\n" +
			"spread the traffic over the healthy ones with kernel IPVS or nftables.\n" +
			"It reads an unmodified keepalived.conf. It can be installed beside\n" +
			"keepalived; the service is neither enabled nor started on install.",
		MTime: mtime,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(pkgDir, "postinst"),
				PreRemove:   filepath.Join(pkgDir, "prerm"),
				PostRemove:  filepath.Join(pkgDir, "postrm"),
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("nfpm: %w", err)
	}
	packager, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dist, "tandem_"+pkgVersion+"_amd64.deb")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := packager.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("nfpm: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, nil
}
