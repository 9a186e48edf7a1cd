// Package realserver prepares a Linux host to be an LVS-DR or LVS-TUN real
// server, as the seeds' lvs-web.sh scripts and the Linux Virtual Server
// documents do by hand. DR (Up): the VIP on a loopback-like device, so the
// host accepts packets for it, and the ARP sysctls that stop it answering
// ARP for the VIP (which would steal the VIP from the director). TUN
// (UpTun, tun.go): the VIPs on the kernel's catch-all tunnel devices, which
// decapsulate what the director sends (IPIP, or GUE through a fou port),
// rp_filter off, and the same ARP sysctls. What Up and UpTun change is
// recorded, so that Down and DownTun undo exactly that and nothing else.
package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"tandem/internal/config"
	"tandem/internal/netio"
)

// The ARP settings a DR real server needs (LVS-DR howto; the seeds):
// arp_ignore=1 answers ARP only for addresses of the receiving interface,
// and arp_announce=2 never uses the VIP as the source of ARP requests. The
// kernel applies the larger of the "all" value and the interface's, so
// both are set.
var wanted = map[string]string{"arp_ignore": "1", "arp_announce": "2"}

// State is what Up (or UpTun) changed, kept in a file for Down.
type State struct {
	Dev string `json:"dev"`
	// Added are the VIPs Up added (ones already there are not listed).
	Added []string `json:"added"`
	// Saved holds the previous value of every sysctl Up changed.
	Saved map[string]string `json:"saved"`
	// Created are the tunnel devices UpTun created, Raised the ones it set
	// up, Fou the GUE ports it opened.
	Created []string  `json:"created,omitempty"`
	Raised  []string  `json:"raised,omitempty"`
	Fou     []FouPort `json:"fou,omitempty"`
	// Decap are the interfaces UpDecap put Tandem's XDP decapsulator on,
	// pinned in DecapDir; the VIPs are then on lo.
	Decap    []string `json:"decap,omitempty"`
	DecapDir string   `json:"decap_dir,omitempty"`
}

func (st State) empty() bool {
	return len(st.Added) == 0 && len(st.Saved) == 0 && len(st.Created) == 0 && len(st.Raised) == 0 && len(st.Fou) == 0 && len(st.Decap) == 0
}

// vipDev is the device a recorded VIP was added to: the DR device, or
// for TUN the tunnel device of the VIP's family (lo with the XDP
// decapsulator).
func (st State) vipDev(v netip.Addr) string {
	switch {
	case st.Dev == tunKey && st.DecapDir != "":
		return "lo"
	case st.Dev == tunKey:
		return tunDevFor(v).name
	}
	return st.Dev
}

// Host is where the sysctls and the state file live; tests point it at
// a namespace's /proc/sys (the default) and a temporary directory.
type Host struct {
	SysctlDir string // /proc/sys/net/ipv4/conf
	StateDir  string // /run/tandem
}

// DefaultHost is the running system.
var DefaultHost = Host{SysctlDir: "/proc/sys/net/ipv4/conf", StateDir: "/run/tandem"}

func (h Host) statePath(dev string) string {
	return filepath.Join(h.StateDir, "realserver-"+dev+".json")
}

func (h Host) sysctl(iface, key string) string { return filepath.Join(h.SysctlDir, iface, key) }

func (h Host) read(iface, key string) (string, error) {
	b, err := os.ReadFile(h.sysctl(iface, key))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s/%s: %w", iface, key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (h Host) write(iface, key, v string) error {
	if err := os.WriteFile(h.sysctl(iface, key), []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s/%s=%s: %w", iface, key, v, err)
	}
	return nil
}

func vipAddress(dev string, i int, vip netip.Addr) *config.IPAddress {
	a := &config.IPAddress{Prefix: netip.PrefixFrom(vip, vip.BitLen()), Dev: dev}
	if vip.Is4() {
		// The label the seeds' scripts give (ifconfig lo:0 ...).
		a.Label = dev + ":" + strconv.Itoa(i)
	}
	return a
}

// Up adds the VIPs to dev as host addresses and sets the ARP sysctls on
// "all" and on dev, recording what it changed; it returns the VIPs it added
// and the number of sysctls it changed this time. Running it again changes
// nothing more.
func (h Host) Up(vips []netip.Addr, dev string) (added []string, changed int, err error) {
	st, err := h.load(dev)
	if err != nil {
		return nil, 0, err
	}
	defer func() { err = errors.Join(err, h.save(st)) }()
	if added, err = addVIPs(&st, vips); err != nil {
		return added, 0, err
	}
	changed, err = h.setSysctls(&st, []string{"all", dev}, wanted)
	return added, changed, err
}

// addVIPs adds each VIP missing from its device (st.vipDev), recording it.
func addVIPs(st *State, vips []netip.Addr) (added []string, err error) {
	for i, v := range vips {
		a := vipAddress(st.vipDev(v), i, v)
		has, err := netio.HasAddress(a.Dev, a)
		if err != nil {
			return added, err
		}
		if has {
			continue
		}
		if err := netio.AddAddress(a.Dev, a); err != nil {
			return added, err
		}
		st.Added = append(st.Added, v.String())
		added = append(added, v.String())
	}
	return added, nil
}

// setSysctls sets each of want on every iface, recording the first value
// it replaced, and returns how many it changed.
func (h Host) setSysctls(st *State, ifaces []string, want map[string]string) (changed int, err error) {
	for _, iface := range ifaces {
		for _, key := range slices.Sorted(maps.Keys(want)) {
			v := want[key]
			cur, err := h.read(iface, key)
			if err != nil {
				return changed, err
			}
			if cur == v {
				continue
			}
			if _, saved := st.Saved[iface+"/"+key]; !saved {
				st.Saved[iface+"/"+key] = cur
			}
			if err := h.write(iface, key, v); err != nil {
				return changed, err
			}
			changed++
		}
	}
	return changed, nil
}

// Down removes the VIPs Up added and puts back the sysctls it changed. With
// no record of an Up, it changes nothing and says so.
func (h Host) Down(dev string) (State, error) {
	st, err := h.load(dev)
	if err != nil {
		return st, err
	}
	if st.empty() {
		return st, fmt.Errorf("no record of `tandem realserver up` on %s (%s): nothing to undo", dev, h.statePath(dev))
	}
	return st, h.undo(st)
}

// undo reverses what st records: VIPs and fou ports first, then the
// sysctls (a tunnel device's go with the device), then the devices.
func (h Host) undo(st State) error {
	var errs []error
	for _, s := range st.Added {
		v, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dev := st.vipDev(v)
		// Without a label: the kernel matches a label given in a delete.
		if err := netio.DelAddress(dev, &config.IPAddress{Prefix: netip.PrefixFrom(v, v.BitLen()), Dev: dev}); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, delFous(st.Fou), detachDecaps(st))
	for k, v := range st.Saved {
		iface, key, _ := strings.Cut(k, "/")
		if err := h.write(iface, key, v); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, undoDevs(st))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(h.statePath(st.Dev))
}

// Check is one line of Status: a fact and whether it is as a real server
// needs it.
type Check struct {
	What string
	Have string
	OK   bool
}

// Status reports, for each VIP and ARP setting, what the host has now.
func (h Host) Status(vips []netip.Addr, dev string) ([]Check, error) {
	out, err := vipChecks(State{Dev: dev}, vips)
	if err != nil {
		return nil, err
	}
	return append(out, h.sysctlChecks([]string{"all", dev}, wanted)...), nil
}

// vipChecks says whether each VIP is on its device (st.vipDev).
func vipChecks(st State, vips []netip.Addr) ([]Check, error) {
	var out []Check
	for i, v := range vips {
		dev := st.vipDev(v)
		has, err := netio.HasAddress(dev, vipAddress(dev, i, v))
		if errors.As(err, &netlink.LinkNotFoundError{}) {
			has, err = false, nil // no device: no VIP on it either
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Check{What: fmt.Sprintf("VIP %s on %s", v, dev), Have: presence(has), OK: has})
	}
	return out, nil
}

// sysctlChecks compares each of want on every iface with the host's value;
// one that cannot be read (a device that is not there) is not as wanted.
func (h Host) sysctlChecks(ifaces []string, want map[string]string) []Check {
	var out []Check
	for _, iface := range ifaces {
		for _, key := range slices.Sorted(maps.Keys(want)) {
			cur, err := h.read(iface, key)
			if err != nil {
				cur = "unreadable"
			}
			out = append(out, Check{What: fmt.Sprintf("%s/%s (want %s)", iface, key, want[key]), Have: cur, OK: cur == want[key]})
		}
	}
	return out
}

func presence(ok bool) string {
	if ok {
		return "present"
	}
	return "absent"
}

func (h Host) load(dev string) (State, error) {
	st := State{Dev: dev, Saved: map[string]string{}}
	b, err := os.ReadFile(h.statePath(dev))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", h.statePath(dev), err)
	}
	if st.Saved == nil {
		st.Saved = map[string]string{}
	}
	return st, nil
}

// save writes st, or removes the record when there is nothing in it.
func (h Host) save(st State) error {
	if st.empty() {
		if err := os.Remove(h.statePath(st.Dev)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(h.StateDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(h.statePath(st.Dev), b, 0o644)
}
