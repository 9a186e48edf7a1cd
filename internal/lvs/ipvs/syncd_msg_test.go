package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// These tests need no kernel: genltest stands in for the generic netlink
// socket. The attributes are written and read here by hand, byte by byte,
// as include/uapi/linux/ip_vs.h and ip_vs_ctl.c lay them out, so that they
// check the wire format rather than the encoder against itself. test/vm
// runs the Syncer against the real IPVS.

// tlv is one netlink attribute: length, type, payload, padding to 4.
func tlv(typ uint16, payload ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(payload)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// attr is a parsed attribute, its type without the nested/byte-order flags.
type attr struct {
	Type    uint16
	Payload []byte
}

// walk splits b into attributes, independently of package netlink.
func walk(t *testing.T, b []byte) []attr {
	t.Helper()
	var out []attr
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%d trailing bytes", len(b))
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			t.Fatalf("attribute length %d of %d bytes", n, len(b))
		}
		out = append(out, attr{binary.NativeEndian.Uint16(b[2:]) & 0x3fff, b[4:n]})
		b = b[min((n+3)&^3, len(b)):]
	}
	return out
}

// fakeIPVS is a generic netlink peer with the IPVS family that records
// requests and answers them with reply.
func fakeIPVS(t *testing.T, reply func(genetlink.Message) ([]genetlink.Message, error)) (*Syncer, *[]genetlink.Message) {
	t.Helper()
	var reqs []genetlink.Message
	fam := genetlink.Family{ID: 0x1d, Name: genlName, Version: genlVersion}
	c := genltest.Dial(genltest.ServeFamily(fam, func(greq genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
		if greq.Header.Version != genlVersion {
			return nil, fmt.Errorf("version %d", greq.Header.Version)
		}
		reqs = append(reqs, greq)
		msgs, err := reply(greq)
		if err == nil && len(msgs) == 0 {
			err = io.EOF // genltest: no reply at all (the kernel's ack)
		}
		return msgs, err
	}))
	s, err := newSyncer(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &reqs
}

func TestSyncerRequests(t *testing.T) {
	s, reqs := fakeIPVS(t, func(genetlink.Message) ([]genetlink.Message, error) { return nil, nil })
	start := SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 5, MaxLen: 1400, Port: 8848, TTL: 2,
		Group: netip.MustParseAddr("224.0.0.81")}
	if err := s.Start(start); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 0, Group: netip.MustParseAddr("ff02::81")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 200}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(SyncBackup); err != nil {
		t.Fatal(err)
	}
	group6 := netip.MustParseAddr("ff02::81").As16()
	want := []struct {
		cmd   uint8
		attrs []attr
	}{
		{cmdNewDaemon, []attr{
			{1, u32(1)}, {2, []byte("eth1\x00")}, {3, u32(5)}, {4, u16(1400)},
			{5, []byte{224, 0, 0, 81}}, {7, u16(8848)}, {8, []byte{2}},
		}},
		{cmdNewDaemon, []attr{{1, u32(2)}, {2, []byte("eth1\x00")}, {3, u32(0)}, {6, group6[:]}}},
		// Nothing optional is sent when it is not set: older kernels
		// and the kernel's defaults.
		{cmdNewDaemon, []attr{{1, u32(2)}, {2, []byte("eth1\x00")}, {3, u32(200)}}},
		{cmdDelDaemon, []attr{{1, u32(2)}}},
	}
	if len(*reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(*reqs), len(want))
	}
	for i, w := range want {
		r := (*reqs)[i]
		if r.Header.Command != w.cmd {
			t.Errorf("request %d: command %d, want %d", i, r.Header.Command, w.cmd)
		}
		outer := walk(t, r.Data)
		if len(outer) != 1 || outer[0].Type != cmdAttrDaemon {
			t.Fatalf("request %d: top-level attributes %+v, want one IPVS_CMD_ATTR_DAEMON (3)", i, outer)
		}
		if diff := cmp.Diff(w.attrs, walk(t, outer[0].Payload)); diff != "" {
			t.Errorf("request %d: daemon attributes (-want +got):\n%s", i, diff)
		}
	}
}

func TestSyncerRefusesBadDaemons(t *testing.T) {
	s, reqs := fakeIPVS(t, func(genetlink.Message) ([]genetlink.Message, error) { return nil, nil })
	for _, d := range []SyncDaemon{
		{State: 0, Interface: "eth0"},
		{State: 3, Interface: "eth0"},
		{State: SyncMaster, Interface: "eth0123456789abc"},
		{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("10.0.0.1")},
	} {
		if err := s.Start(d); err == nil {
			t.Errorf("Start(%+v) succeeded", d)
		}
	}
	if len(*reqs) != 0 {
		t.Errorf("%d requests sent for invalid daemons", len(*reqs))
	}
}

func TestSyncerKernelErrors(t *testing.T) {
	s, _ := fakeIPVS(t, func(m genetlink.Message) ([]genetlink.Message, error) {
		if m.Header.Command == cmdNewDaemon {
			return nil, genltest.Error(int(unix.EEXIST))
		}
		return nil, genltest.Error(int(unix.ESRCH))
	})
	err := s.Start(SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1})
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("Start of a running daemon: %v, want EEXIST", err)
	}
	if err := s.Stop(SyncBackup); !errors.Is(err, unix.ESRCH) {
		t.Errorf("Stop of a stopped daemon: %v, want ESRCH", err)
	}
}

func TestSyncerDaemons(t *testing.T) {
	group6 := netip.MustParseAddr("ff05::1:81").As16()
	// As Linux 6.1 answers (ip_vs_genl_fill_daemon): every setting, the
	// interface NUL-terminated; and as Linux before 4.3 did: state,
	// interface and sync id only.
	master := tlv(cmdAttrDaemon|netlink.Nested, cat(
		tlv(1, u32(1)...), tlv(2, []byte("eth1\x00")...), tlv(3, u32(51)...), tlv(4, u16(1472)...),
		tlv(7, u16(8848)...), tlv(8, 1), tlv(5, 224, 0, 0, 81))...)
	backup := tlv(cmdAttrDaemon|netlink.Nested, cat(
		tlv(1, u32(2)...), tlv(2, []byte("bond0.100\x00")...), tlv(3, u32(0)...), tlv(4, u16(9000)...),
		tlv(7, u16(9999)...), tlv(8, 4), tlv(6, group6[:]...))...)
	old := tlv(cmdAttrDaemon|netlink.Nested, cat(tlv(1, u32(2)...), tlv(2, []byte("eth0\x00")...), tlv(3, u32(7)...))...)
	reply := func(bs ...[]byte) func(genetlink.Message) ([]genetlink.Message, error) {
		return func(m genetlink.Message) ([]genetlink.Message, error) {
			if m.Header.Command != cmdGetDaemon {
				return nil, fmt.Errorf("command %d, want IPVS_CMD_GET_DAEMON", m.Header.Command)
			}
			var out []genetlink.Message
			for _, b := range bs {
				out = append(out, genetlink.Message{Header: genetlink.Header{Command: cmdNewDaemon, Version: 1}, Data: b})
			}
			return out, nil
		}
	}
	for _, tt := range []struct {
		name  string
		reply [][]byte
		want  []SyncDaemon
	}{
		{"none", nil, nil},
		{"both", [][]byte{master, backup}, []SyncDaemon{
			{State: SyncMaster, Interface: "eth1", SyncID: 51, MaxLen: 1472, Port: 8848, TTL: 1, Group: netip.MustParseAddr("224.0.0.81")},
			{State: SyncBackup, Interface: "bond0.100", SyncID: 0, MaxLen: 9000, Port: 9999, TTL: 4, Group: netip.MustParseAddr("ff05::1:81")},
		}},
		{"before Linux 4.3", [][]byte{old}, []SyncDaemon{{State: SyncBackup, Interface: "eth0", SyncID: 7}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := fakeIPVS(t, reply(tt.reply...))
			got, err := s.Daemons()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Daemons (-want +got):\n%s", diff)
			}
		})
	}

	// A reply without a state, or with a group of the wrong size, is an
	// error, not a daemon in state 0.
	for name, b := range map[string][]byte{
		"no state":    tlv(cmdAttrDaemon|netlink.Nested, tlv(2, []byte("eth0\x00")...)...),
		"short group": tlv(cmdAttrDaemon|netlink.Nested, cat(tlv(1, u32(1)...), tlv(5, 224, 0, 0))...),
		"not nested":  tlv(1, u32(1)...),
	} {
		s, _ := fakeIPVS(t, reply(b))
		if got, err := s.Daemons(); err == nil {
			t.Errorf("%s: Daemons = %+v, want an error", name, got)
		}
	}
}

func TestSyncerUnavailable(t *testing.T) {
	// The generic netlink controller answers ENOENT for a family nobody
	// registered (no ip_vs module).
	c := genltest.Dial(func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
		return nil, genltest.Error(int(unix.ENOENT))
	})
	if _, err := newSyncer(c); !errors.Is(err, ErrUnavailable) {
		t.Errorf("newSyncer without the IPVS family: %v, want ErrUnavailable", err)
	}
}
