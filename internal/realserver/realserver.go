// Package realserver prepares a Linux host to be an LVS-DR (or TUN) real
// server, as the seeds' lvs-web.sh scripts do by hand: the VIP on a
// loopback-like device, so the host accepts packets for it, and the ARP
// sysctls that stop it answering ARP for the VIP (which would steal the
// VIP from the director). What Up changes is recorded, so that Down undoes
// exactly that and nothing else.
package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"tandem/internal/config"
	"tandem/internal/netio"
)

// The ARP settings a DR real server needs (LVS-DR howto; the seeds):
// arp_ignore=1 answers ARP only for addresses of the receiving interface,
// and arp_announce=2 never uses the VIP as the source of ARP requests. The
// kernel applies the larger of the "all" value and the interface's, so
// both are set.
var wanted = map[string]string{"arp_ignore": "1", "arp_announce": "2"}

// State is what Up changed, kept in a file for Down.
type State struct {
	Dev string `json:"dev"`
	// Added are the VIPs Up added (ones already there are not listed).
	Added []string `json:"added"`
	// Saved holds the previous value of every sysctl Up changed.
	Saved map[string]string `json:"saved"`
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
	for i, v := range vips {
		a := vipAddress(dev, i, v)
		has, err := netio.HasAddress(dev, a)
		if err != nil {
			return added, changed, err
		}
		if has {
			continue
		}
		if err := netio.AddAddress(dev, a); err != nil {
			return added, changed, err
		}
		st.Added = append(st.Added, v.String())
		added = append(added, v.String())
	}
	for _, iface := range []string{"all", dev} {
		for key, v := range wanted {
			cur, err := h.read(iface, key)
			if err != nil {
				return added, changed, err
			}
			if cur == v {
				continue
			}
			if _, saved := st.Saved[iface+"/"+key]; !saved {
				st.Saved[iface+"/"+key] = cur
			}
			if err := h.write(iface, key, v); err != nil {
				return added, changed, err
			}
			changed++
		}
	}
	return added, changed, h.save(st)
}

// Down removes the VIPs Up added and puts back the sysctls it changed. With
// no record of an Up, it changes nothing and says so.
func (h Host) Down(dev string) (State, error) {
	st, err := h.load(dev)
	if err != nil {
		return st, err
	}
	if len(st.Added) == 0 && len(st.Saved) == 0 {
		return st, fmt.Errorf("no record of `tandem realserver up` on %s (%s): nothing to undo", dev, h.statePath(dev))
	}
	var errs []error
	for _, s := range st.Added {
		v, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Without a label: the kernel matches a label given in a delete.
		if err := netio.DelAddress(dev, &config.IPAddress{Prefix: netip.PrefixFrom(v, v.BitLen()), Dev: dev}); err != nil {
			errs = append(errs, err)
		}
	}
	for k, v := range st.Saved {
		iface, key, _ := strings.Cut(k, "/")
		if err := h.write(iface, key, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, err
	}
	return st, os.Remove(h.statePath(dev))
}

// Check is one line of Status: a fact and whether it is as a DR real
// server needs it.
type Check struct {
	What string
	Have string
	OK   bool
}

// Status reports, for each VIP and ARP setting, what the host has now.
func (h Host) Status(vips []netip.Addr, dev string) ([]Check, error) {
	var out []Check
	for i, v := range vips {
		has, err := netio.HasAddress(dev, vipAddress(dev, i, v))
		if err != nil {
			return nil, err
		}
		have := "absent"
		if has {
			have = "present"
		}
		out = append(out, Check{What: fmt.Sprintf("VIP %s on %s", v, dev), Have: have, OK: has})
	}
	for _, iface := range []string{"all", dev} {
		for _, key := range []string{"arp_ignore", "arp_announce"} {
			cur, err := h.read(iface, key)
			if err != nil {
				return nil, err
			}
			out = append(out, Check{What: fmt.Sprintf("%s/%s (want %s)", iface, key, wanted[key]), Have: cur, OK: cur == wanted[key]})
		}
	}
	return out, nil
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

func (h Host) save(st State) error {
	if err := os.MkdirAll(h.StateDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(h.statePath(st.Dev), b, 0o644)
}
