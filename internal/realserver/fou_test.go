package realserver

import (
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	mnl "github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// TestFouMessages checks the fou requests byte by byte against a fake
// generic netlink peer (no kernel): a GUE port is added with its port
// (big-endian), family and type and without FOU_ATTR_IPPROTO, which newer
// kernels refuse at 0; a delete names port and family; a dump is read back
// into ports and modes.
func TestFouMessages(t *testing.T) {
	fam := genetlink.Family{ID: 0x30, Name: fouGenlName, Version: fouGenlVersion}
	type req struct {
		cmd   uint8
		attrs []mnl.Attribute
	}
	var reqs []req
	entry := func(port uint16, af, typ uint8) genetlink.Message {
		return genetlink.Message{Data: nltest.MustMarshalAttributes([]mnl.Attribute{
			{Type: fouAttrPort, Data: []byte{byte(port >> 8), byte(port)}},
			{Type: fouAttrAF, Data: []byte{af}},
			{Type: 3, Data: []byte{0}}, // FOU_ATTR_IPPROTO, as the kernel reports it
			{Type: fouAttrType, Data: []byte{typ}},
		})}
	}
	c := genltest.Dial(genltest.ServeFamily(fam, func(g genetlink.Message, _ mnl.Message) ([]genetlink.Message, error) {
		attrs, err := mnl.UnmarshalAttributes(g.Data)
		if err != nil {
			return nil, err
		}
		if g.Header.Version != fouGenlVersion {
			t.Errorf("command %d sent with version %d", g.Header.Command, g.Header.Version)
		}
		reqs = append(reqs, req{g.Header.Command, attrs})
		if g.Header.Command == fouCmdGet {
			return []genetlink.Message{entry(6080, unix.AF_INET, fouEncapGUE), entry(5555, unix.AF_INET6, fouEncapDirect)}, nil
		}
		return []genetlink.Message{{}}, nil
	}))
	fou, err := openFou(c)
	if err != nil {
		t.Fatal(err)
	}
	defer fou.close()
	p := FouPort{Port: 6080, Family: unix.AF_INET}
	if err := fou.addGUE(p); err != nil {
		t.Fatal(err)
	}
	if err := fou.del(FouPort{Port: 6080, Family: unix.AF_INET6}); err != nil {
		t.Fatal(err)
	}
	want := []req{
		{fouCmdAdd, []mnl.Attribute{{Length: 6, Type: fouAttrPort, Data: []byte{0x17, 0xc0}}, {Length: 5, Type: fouAttrAF, Data: []byte{unix.AF_INET}}, {Length: 5, Type: fouAttrType, Data: []byte{fouEncapGUE}}}},
		{fouCmdDel, []mnl.Attribute{{Length: 6, Type: fouAttrPort, Data: []byte{0x17, 0xc0}}, {Length: 5, Type: fouAttrAF, Data: []byte{unix.AF_INET6}}}},
	}
	if diff := gocmp.Diff(want, reqs, gocmp.AllowUnexported(req{})); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		p    FouPort
		want string
	}{
		{p, "gue"},
		{FouPort{Port: 5555, Family: unix.AF_INET6}, "direct"},
		{FouPort{Port: 5555, Family: unix.AF_INET}, "absent"},
	} {
		if got, err := fou.mode(c.p); err != nil || got != c.want {
			t.Errorf("mode(%v) = %q, %v; want %q", c.p, got, err, c.want)
		}
	}
	if got, err := ensureFou(fou, FouPort{Port: 5555, Family: unix.AF_INET6}); err == nil || got {
		t.Errorf("ensureFou over a direct port: added %t, err %v; want an error", got, err)
	}
}
