package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"tandem/internal/lvs"
)

// What cloudflare/ipvs v0.12.0 does not send, Tandem sends itself on a
// generic netlink socket of its own: a service's persistence engine
// (IPVS_SVC_ATTR_PE_NAME) and the flush of the whole table
// (IPVS_CMD_FLUSH). The numbers are those of include/uapi/linux/ip_vs.h.
const (
	genlName    = "IPVS" // IPVS_GENL_NAME
	genlVersion = 1      // IPVS_GENL_VERSION

	cmdNewService = 1  // IPVS_CMD_NEW_SERVICE
	cmdSetService = 2  // IPVS_CMD_SET_SERVICE
	cmdGetService = 4  // IPVS_CMD_GET_SERVICE
	cmdFlush      = 17 // IPVS_CMD_FLUSH

	attrService = 1 // IPVS_CMD_ATTR_SERVICE

	svcAF        = 1  // IPVS_SVC_ATTR_AF, u16
	svcProtocol  = 2  // IPVS_SVC_ATTR_PROTOCOL, u16
	svcAddr      = 3  // IPVS_SVC_ATTR_ADDR, union nf_inet_addr
	svcPort      = 4  // IPVS_SVC_ATTR_PORT, be16
	svcFWMark    = 5  // IPVS_SVC_ATTR_FWMARK, u32
	svcSchedName = 6  // IPVS_SVC_ATTR_SCHED_NAME, string
	svcFlags     = 7  // IPVS_SVC_ATTR_FLAGS, struct ip_vs_flags
	svcTimeout   = 8  // IPVS_SVC_ATTR_TIMEOUT, u32
	svcNetmask   = 9  // IPVS_SVC_ATTR_NETMASK, be32 mask (IPv4) or prefix length (IPv6)
	svcPEName    = 11 // IPVS_SVC_ATTR_PE_NAME, string
)

// extras is what the Kernel sends on its own socket (a fake in tests).
type extras interface {
	flush() error
	putService(cmd uint8, s lvs.Service) error
	persistenceEngines() (map[lvs.ServiceKey]string, error)
	close() error
}

// genl is Tandem's own IPVS generic netlink socket.
type genl struct {
	c   *genetlink.Conn
	fam genetlink.Family
}

func dialGenl() (*genl, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, err
	}
	fam, err := c.GetFamily(genlName)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &genl{c: c, fam: fam}, nil
}

func (g *genl) close() error { return g.c.Close() }

func (g *genl) execute(cmd uint8, flags netlink.HeaderFlags, data []byte) ([]genetlink.Message, error) {
	msg := genetlink.Message{Header: genetlink.Header{Command: cmd, Version: genlVersion}, Data: data}
	return g.c.Execute(msg, g.fam.ID, netlink.Request|flags)
}

// flush deletes every service of the namespace, with its real servers
// (ip_vs_ctl.c ip_vs_flush), whoever made it.
func (g *genl) flush() error {
	_, err := g.execute(cmdFlush, netlink.Acknowledge, nil)
	return err
}

// putService sends a whole service with its persistence engine: create
// (cmdNewService) or update (cmdSetService). It encodes what toService
// gives cloudflare/ipvs, in the kernel's attributes.
func (g *genl) putService(cmd uint8, s lvs.Service) error {
	svc := toService(s)
	ae := netlink.NewAttributeEncoder()
	ae.Nested(attrService, func(nae *netlink.AttributeEncoder) error {
		nae.Uint16(svcAF, uint16(svc.Family))
		if svc.FWMark != 0 {
			nae.Uint32(svcFWMark, svc.FWMark)
		} else {
			nae.Uint16(svcProtocol, uint16(svc.Protocol))
			nae.Bytes(svcAddr, svc.Address.AsSlice())
			port := make([]byte, 2)
			binary.BigEndian.PutUint16(port, svc.Port)
			nae.Bytes(svcPort, port)
		}
		nae.String(svcSchedName, svc.Scheduler)
		// struct ip_vs_flags: the flags, then the mask of those to set.
		flags := make([]byte, 8)
		binary.NativeEndian.PutUint32(flags, uint32(svc.Flags))
		binary.NativeEndian.PutUint32(flags[4:], ^uint32(0))
		nae.Bytes(svcFlags, flags)
		nae.Uint32(svcTimeout, svc.Timeout)
		if svc.Netmask.Is4() {
			nae.Bytes(svcNetmask, svc.Netmask.AsSlice())
		} else {
			nae.Uint32(svcNetmask, uint32(svc.Netmask.Bits()))
		}
		nae.String(svcPEName, s.PersistenceEngine)
		return nil
	})
	data, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = g.execute(cmd, netlink.Acknowledge, data)
	return err
}

// persistenceEngines reads the persistence engine of every service that
// has one, by key.
func (g *genl) persistenceEngines() (map[lvs.ServiceKey]string, error) {
	msgs, err := g.execute(cmdGetService, netlink.Dump, nil)
	if err != nil {
		return nil, err
	}
	out := map[lvs.ServiceKey]string{}
	for _, m := range msgs {
		key, pe, err := decodePE(m.Data)
		if err != nil {
			return nil, err
		}
		if pe != "" {
			out[key] = pe
		}
	}
	return out, nil
}

// decodePE reads a service's key, as fromService makes it, and its
// persistence engine from one IPVS_CMD_GET_SERVICE answer.
func decodePE(b []byte) (lvs.ServiceKey, string, error) {
	var key lvs.ServiceKey
	var pe string
	var addr []byte
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return key, "", err
	}
	for ad.Next() {
		if ad.Type() != attrService {
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case svcAF:
					key.Family = lvs.AddressFamily(nad.Uint16())
				case svcProtocol:
					key.Protocol = lvs.Protocol(nad.Uint16())
				case svcAddr:
					addr = nad.Bytes()
				case svcPort:
					if p := nad.Bytes(); len(p) == 2 {
						key.Port = binary.BigEndian.Uint16(p)
					}
				case svcFWMark:
					key.FWMark = nad.Uint32()
				case svcPEName:
					pe = nad.String()
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return key, "", fmt.Errorf("decode service: %w", err)
	}
	if key.FWMark != 0 {
		key.Protocol = 0 // as fromService: a fwmark service has no protocol
		return key, pe, nil
	}
	// The kernel sends the address in a 16-byte union nf_inet_addr.
	switch {
	case key.Family == lvs.IPv4 && len(addr) >= 4:
		key.VIP = netip.AddrFrom4([4]byte(addr[:4]))
	case key.Family == lvs.IPv6 && len(addr) >= 16:
		key.VIP = netip.AddrFrom16([16]byte(addr[:16]))
	default:
		return key, "", fmt.Errorf("decode service: address of %d bytes for family %d", len(addr), key.Family)
	}
	return key, pe, nil
}

// isMissingPE tells a create or update that named a persistence engine
// the kernel does not have: ip_vs_pe_getbyname fails and the kernel
// answers ENOENT (ip_vs_ctl.c ip_vs_add_service).
func isMissingPE(s lvs.Service, err error) bool {
	return s.PersistenceEngine != "" && errors.Is(err, unix.ENOENT)
}
