package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultIPRoute2Dir is where iproute2 (and keepalived, rttables.c) read the
// names of routing tables, protocols, scopes and DS field values.
const DefaultIPRoute2Dir = "/etc/iproute2"

// RouteTable is a routing table id (linux/rtnetlink.h rt_class_t). 0 is
// RT_TABLE_UNSPEC: not given, which the kernel reads as the main table for
// a route and which leaves a rule without a table.
type RouteTable uint32

// RouteProto is a route's protocol (linux/rtnetlink.h RTPROT_*). 0 is
// RTPROT_UNSPEC: not given (netlink then sends boot, as `ip route` does).
type RouteProto uint8

// Scope is an address or route scope (linux/rtnetlink.h rt_scope_t); 0 is
// global (RT_SCOPE_UNIVERSE), the kernel's default.
type Scope uint8

// RouteType is a route's type (linux/rtnetlink.h RTN_*); 0 means not given:
// a unicast route through a device.
type RouteType uint8

// DSField is a rule's tos/dsfield byte.
type DSField uint8

// The names iproute2 knows without any file (lib/rt_names.c), the same
// defaults keepalived has (rttables.c). Numbers are the kernel's ABI.
var (
	tableNames = map[string]uint32{"unspec": 0, "default": 253, "main": 254, "local": 255}
	protoNames = map[string]uint32{
		"unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "gated": 8, "ra": 9,
		"mrt": 10, "zebra": 11, "bird": 12, "dnrouted": 13, "xorp": 14, "ntk": 15, "dhcp": 16,
		"mrouted": 17, "keepalived": 18, "babel": 42, "openr": 99, "bgp": 186, "isis": 187,
		"ospf": 188, "rip": 189, "eigrp": 192,
	}
	scopeNames = map[string]uint32{"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
	// The route types keepalived reads before a destination
	// (vrrp_iproute.c, rttables.c rtntype names) that the kernel still
	// takes; unicast is the default and written as no type.
	routeTypeNames = map[string]uint32{"local": 2, "broadcast": 3, "anycast": 4, "multicast": 5, "blackhole": 6, "unreachable": 7, "prohibit": 8, "throw": 9}
)

// rtKind is one kind of iproute2 name: its file, its built-in names and the
// largest number the kernel field holds.
type rtKind struct {
	what     string // as the diagnostics name it
	file     string // under the iproute2 directory
	builtins map[string]uint32
	max      uint64
}

var (
	kindTable   = rtKind{"table", "rt_tables", tableNames, 1<<32 - 1}
	kindProto   = rtKind{"protocol", "rt_protos", protoNames, 255}
	kindScope   = rtKind{"scope", "rt_scopes", scopeNames, 255}
	kindDSField = rtKind{"tos", "rt_dsfield", nil, 255}
)

// rtNames resolves iproute2's names. Files are read once per load, only
// when a name is not a number or a built-in one; a missing file holds no
// names (the built-in ones still work), as in iproute2 and keepalived.
type rtNames struct {
	dir   string
	files map[string]map[string]uint32
}

// resolve gives the number of s: a number (C's strtoul base 0: decimal,
// 0x hex, 0 octal, as keepalived's rttables.c find_entry), a built-in name,
// or a name in the kind's file (and FILE.d/*.conf, as iproute2 reads).
func (n *rtNames) resolve(k rtKind, s string) (uint32, error) {
	if v, err := strconv.ParseUint(s, 0, 64); err == nil && !strings.Contains(s, "_") {
		if v > k.max {
			return 0, fmt.Errorf("%s %s is out of range 0..%d", k.what, s, k.max)
		}
		return uint32(v), nil
	}
	if v, ok := k.builtins[s]; ok {
		return v, nil
	}
	if v, ok := n.file(k.file)[s]; ok {
		return v, nil
	}
	msg := fmt.Sprintf("%s %q is not a number", k.what, s)
	if len(k.builtins) > 0 {
		names := make([]string, 0, len(k.builtins))
		for b := range k.builtins {
			names = append(names, b)
		}
		sort.Strings(names)
		msg += ", a built-in name (" + strings.Join(names, ", ") + ")"
	}
	return 0, fmt.Errorf("%s or a name in %s", msg, filepath.Join(n.dir, k.file))
}

// file reads (once) the names of an iproute2 file and its .d directory.
func (n *rtNames) file(name string) map[string]uint32 {
	if m, ok := n.files[name]; ok {
		return m
	}
	m := map[string]uint32{}
	paths, _ := filepath.Glob(filepath.Join(n.dir, name+".d", "*.conf"))
	for _, path := range append([]string{filepath.Join(n.dir, name)}, paths...) {
		readRTFile(path, m)
	}
	if n.files == nil {
		n.files = map[string]map[string]uint32{}
	}
	n.files[name] = m
	return m
}

// readRTFile adds the "NUMBER NAME" lines of an iproute2 file to m; a
// file that cannot be read adds nothing (iproute2 ignores it too).
func readRTFile(path string, m map[string]uint32) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		if v, err := strconv.ParseUint(fs[0], 0, 32); err == nil {
			m[fs[1]] = uint32(v)
		}
	}
}

// nameOf is the built-in name of v, else its number in decimal.
func nameOf(names map[string]uint32, v uint32) string {
	for s, x := range names {
		if x == v {
			return s
		}
	}
	return strconv.FormatUint(uint64(v), 10)
}

func (t RouteTable) String() string { return nameOf(tableNames, uint32(t)) }
func (p RouteProto) String() string { return nameOf(protoNames, uint32(p)) }
func (s Scope) String() string      { return nameOf(scopeNames, uint32(s)) }
func (t RouteType) String() string  { return nameOf(routeTypeNames, uint32(t)) }
func (d DSField) String() string    { return "0x" + strconv.FormatUint(uint64(d), 16) }

// MarshalText makes dumps show the names, as `ip` does.
func (t RouteTable) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalText makes dumps show the names, as `ip` does.
func (p RouteProto) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// MarshalText makes dumps show the names, as `ip` does.
func (s Scope) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalText makes dumps show the names, as `ip` does.
func (t RouteType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalText makes dumps show the byte in hex, as `ip rule` does.
func (d DSField) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
