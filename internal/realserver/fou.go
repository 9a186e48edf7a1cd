package realserver

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/genetlink"
	mnl "github.com/mdlayher/netlink"
)

// Foo-over-UDP receive ports, the `ip fou add|del|show` of iproute2, on the
// kernel's "fou" generic netlink family (include/uapi/linux/fou.h). Tandem
// speaks it itself: vishvananda/netlink's FouAdd always sends
// FOU_ATTR_IPPROTO, and kernels that forbid protocol 0 there
// (NLA_POLICY_MIN 1, in Debian's 6.1 too) refuse its GUE ports with
// ERANGE; a GUE port carries no protocol (the GUE header names it).
const (
	fouGenlName    = "fou"
	fouGenlVersion = 1

	fouCmdAdd = 1 // FOU_CMD_ADD
	fouCmdDel = 2 // FOU_CMD_DEL
	fouCmdGet = 3 // FOU_CMD_GET

	fouAttrPort = 1 // FOU_ATTR_PORT, be16
	fouAttrAF   = 2 // FOU_ATTR_AF, u8
	fouAttrType = 4 // FOU_ATTR_TYPE, u8

	fouEncapDirect = 1 // FOU_ENCAP_DIRECT
	fouEncapGUE    = 2 // FOU_ENCAP_GUE
)

// fouConn is a generic netlink socket on the fou family, in the network
// namespace of the thread that opened it.
type fouConn struct {
	c   *genetlink.Conn
	fam genetlink.Family
}

// dialFou opens the family; it fails (ENOENT from the generic netlink
// controller) on a kernel without fou.
func dialFou() (*fouConn, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, err
	}
	return openFou(c)
}

func openFou(c *genetlink.Conn) (*fouConn, error) {
	fam, err := c.GetFamily(fouGenlName)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &fouConn{c: c, fam: fam}, nil
}

func (f *fouConn) close() error { return f.c.Close() }

// portAttrs encodes p's port and family, which identify it.
func portAttrs(ae *mnl.AttributeEncoder, p FouPort) {
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, p.Port)
	ae.Bytes(fouAttrPort, port)
	ae.Uint8(fouAttrAF, uint8(p.Family))
}

func (f *fouConn) execute(cmd uint8, flags mnl.HeaderFlags, ae *mnl.AttributeEncoder) ([]genetlink.Message, error) {
	data, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msg := genetlink.Message{Header: genetlink.Header{Command: cmd, Version: fouGenlVersion}, Data: data}
	return f.c.Execute(msg, f.fam.ID, mnl.Request|flags)
}

// addGUE opens p in GUE mode (`ip fou add port N gue [-6]`).
func (f *fouConn) addGUE(p FouPort) error {
	ae := mnl.NewAttributeEncoder()
	portAttrs(ae, p)
	ae.Uint8(fouAttrType, fouEncapGUE)
	if _, err := f.execute(fouCmdAdd, mnl.Acknowledge, ae); err != nil {
		return fmt.Errorf("add fou port %s (gue): %w", p, err)
	}
	return nil
}

// del closes p (`ip fou del port N [-6]`).
func (f *fouConn) del(p FouPort) error {
	ae := mnl.NewAttributeEncoder()
	portAttrs(ae, p)
	if _, err := f.execute(fouCmdDel, mnl.Acknowledge, ae); err != nil {
		return fmt.Errorf("delete fou port %s: %w", p, err)
	}
	return nil
}

// list returns every fou port of the namespace with its mode: "gue",
// "direct" or "type N".
func (f *fouConn) list() (map[FouPort]string, error) {
	msgs, err := f.execute(fouCmdGet, mnl.Dump, mnl.NewAttributeEncoder())
	if err != nil {
		return nil, fmt.Errorf("list fou ports: %w", err)
	}
	out := map[FouPort]string{}
	for _, m := range msgs {
		var p FouPort
		var typ uint8
		ad, err := mnl.NewAttributeDecoder(m.Data)
		if err != nil {
			return nil, err
		}
		for ad.Next() {
			switch ad.Type() {
			case fouAttrPort:
				if b := ad.Bytes(); len(b) == 2 {
					p.Port = binary.BigEndian.Uint16(b)
				}
			case fouAttrAF:
				p.Family = int(ad.Uint8())
			case fouAttrType:
				typ = ad.Uint8()
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("list fou ports: %w", err)
		}
		out[p] = map[uint8]string{fouEncapGUE: "gue", fouEncapDirect: "direct"}[typ]
		if out[p] == "" {
			out[p] = fmt.Sprintf("type %d", typ)
		}
	}
	return out, nil
}

// mode says what p is: "gue", "direct" or "absent".
func (f *fouConn) mode(p FouPort) (string, error) {
	ports, err := f.list()
	if err != nil {
		return "", err
	}
	if m, ok := ports[p]; ok {
		return m, nil
	}
	return "absent", nil
}
