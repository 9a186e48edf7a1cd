package ipvs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"tandem/internal/lvs"
)

// DefaultStateFile records the IPVS services Tandem created. It lives under
// /run, a tmpfs: it survives a crash of the process, which is when it is
// needed, and not a reboot, which empties the kernel's IPVS table too.
const DefaultStateFile = "/run/tandem/ipvs-services"

// stateFile is the set of services this backend created, kept in memory
// and, unless path is "", in a file: one ServiceKey per line in its String
// form ("tcp/10.0.0.1:80", "udp/[2001:db8::1]:53", "fwm:42/ipv4").
//
// IPVS has no field to tag a service with (no comment, no owner), and
// guessing from the key or the scheduler would sooner or later claim an
// operator's service, so ownership is remembered rather than marked.
type stateFile struct {
	path string
	keys map[lvs.ServiceKey]bool
}

func loadStateFile(path string) (*stateFile, error) {
	s := &stateFile{path: path, keys: map[lvs.ServiceKey]bool{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lvs/ipvs: state file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKey(line)
		if err != nil {
			return nil, fmt.Errorf("lvs/ipvs: state file %s:%d: %w", path, n, err)
		}
		s.keys[k] = true
	}
	return s, nil
}

// parseKey reads a ServiceKey back from its String form.
func parseKey(s string) (lvs.ServiceKey, error) {
	if rest, ok := strings.CutPrefix(s, "fwm:"); ok {
		mark, fam, _ := strings.Cut(rest, "/")
		m, err := strconv.ParseUint(mark, 10, 32)
		if err != nil || m == 0 {
			return lvs.ServiceKey{}, fmt.Errorf("bad firewall mark in %q", s)
		}
		k := lvs.ServiceKey{FWMark: uint32(m)}
		switch fam {
		case lvs.IPv4.String():
			k.Family = lvs.IPv4
		case lvs.IPv6.String():
			k.Family = lvs.IPv6
		default:
			return lvs.ServiceKey{}, fmt.Errorf("bad family in %q", s)
		}
		return k, nil
	}
	proto, addr, _ := strings.Cut(s, "/")
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return lvs.ServiceKey{}, fmt.Errorf("bad address in %q: %w", s, err)
	}
	k := lvs.ServiceKey{Family: lvs.IPv4, VIP: ap.Addr(), Port: ap.Port()}
	if ap.Addr().Is6() {
		k.Family = lvs.IPv6
	}
	for _, p := range []lvs.Protocol{lvs.TCP, lvs.UDP, lvs.SCTP} {
		if proto == p.String() {
			k.Protocol = p
		}
	}
	if k.Protocol == 0 {
		return lvs.ServiceKey{}, fmt.Errorf("bad protocol in %q", s)
	}
	return k, nil
}

func (s *stateFile) has(k lvs.ServiceKey) bool { return s.keys[k] }

// add records k and reports whether it was new.
func (s *stateFile) add(k lvs.ServiceKey) (bool, error) {
	if s.keys[k] {
		return false, nil
	}
	s.keys[k] = true
	if err := s.save(); err != nil {
		delete(s.keys, k)
		return false, err
	}
	return true, nil
}

func (s *stateFile) remove(k lvs.ServiceKey) error {
	if !s.keys[k] {
		return nil
	}
	delete(s.keys, k)
	return s.save()
}

// retain forgets every key not in present.
func (s *stateFile) retain(present map[lvs.ServiceKey]bool) error {
	changed := false
	for k := range s.keys {
		if !present[k] {
			delete(s.keys, k)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.save()
}

// save replaces the file atomically (write, then rename), so a crash
// mid-write leaves the previous record, never half of one.
func (s *stateFile) save() error {
	if s.path == "" {
		return nil
	}
	keys := make([]lvs.ServiceKey, 0, len(s.keys))
	for k := range s.keys {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, lvs.ServiceKey.Compare)
	var b bytes.Buffer
	b.WriteString("# IPVS services created by Tandem (internal/lvs/ipvs); others are never touched.\n")
	for _, k := range keys {
		b.WriteString(k.String() + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("lvs/ipvs: state file: %w", err)
	}
	// A temporary file of its own: two Tandems in two network namespaces
	// of one host share the directory, and a fixed name let one rename
	// the other's file away mid-save.
	f, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("lvs/ipvs: state file: %w", err)
	}
	_, werr := f.Write(b.Bytes())
	if err := errors.Join(werr, f.Chmod(0o644), f.Close()); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("lvs/ipvs: state file: %w", err)
	}
	if err := os.Rename(f.Name(), s.path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("lvs/ipvs: state file: %w", err)
	}
	return nil
}
