package lab

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PairConf is a Seed000 DR pair's configuration, as the reload matrix
// (test/e2e) and bench/reload edit it one setting at a time: seed000's
// instance (VRRPv2, VRID 51, VIP 172.16.7.5) and virtual server (wrr, DR,
// TCP_CHECK on rs1 and rs2 port 80, alpha), a second virtual server on
// SilentPort with rs1 alone, plus a notify script, SMTP alerts and, on
// dir1 only, a tracked script whose weight adds to dir1's priority and
// shows in its adverts. dir2 is BACKUP at priority 90.
type PairConf struct {
	Prio        int    // dir1's priority
	Advert      int    // advert_int, seconds
	ExtraVIP    bool   // 172.16.7.6 beside 172.16.7.5
	Route       bool   // virtual_routes: 10.99.0.0/24 via rs1
	Notify      string // the notify script
	SMTP        string // smtp_server, host:port
	Check       string // the tracked script (it should pass)
	TrackWeight int
	RSWeight    int // rs2's weight; rs1's is 3
	Timeout     int // TCP_CHECK connect_timeout, seconds
	Quorum      int
}

// SilentPort is the port of PairConf's second virtual server and of its
// one real server, rs1 (DR keeps the service's port). Its checker shares
// connect_timeout with the others; when rs1 drops what is sent to that
// port (DropTCP), each run lasts the timeout, so its latency shows the
// timeout in force.
const SilentPort = 8080

// Conf is the configuration of director node, dir1 or dir2.
func (m PairConf) Conf(node string) string {
	host, port, _ := net.SplitHostPort(m.SMTP)
	prio, state, track := 90, "BACKUP", ""
	if node == "dir1" {
		prio, state = m.Prio, "MASTER"
		track = fmt.Sprintf("    track_script {\n        chk weight %d\n    }\n", m.TrackWeight)
	}
	vips := "        172.16.7.5\n"
	if m.ExtraVIP {
		vips += "        172.16.7.6\n"
	}
	routes := ""
	if m.Route {
		routes = "    virtual_routes {\n        10.99.0.0/24 via 172.16.7.3 dev eth0\n    }\n"
	}
	rs := func(ip string, weight int) string {
		return fmt.Sprintf(`    real_server %s 80 {
        weight %d
        TCP_CHECK {
            connect_timeout %d
            connect_port 80
        }
    }
`, ip, weight, m.Timeout)
	}
	return fmt.Sprintf(`global_defs {
    router_id %s
    notification_email {
        ops@example.org
    }
    notification_email_from tandem@example.org
    smtp_server %s %s
}
vrrp_script chk {
    script "%s"
    interval 1
}
vrrp_instance VI_1 {
    state %s
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %d
    smtp_alert
    notify "%s"
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
%s    }
%s%s}
virtual_server 172.16.7.5 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    quorum %d
    alpha
%s%s}
virtual_server 172.16.7.5 %d {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    alpha
    real_server 172.16.7.3 %d {
        TCP_CHECK {
            connect_timeout %d
        }
    }
}
`, node, host, port, m.Check, state, prio, m.Advert, m.Notify, vips, routes, track, m.Quorum, rs("172.16.7.3", 3), rs("172.16.7.4", m.RSWeight),
		SilentPort, SilentPort, m.Timeout)
}

// DropTCP makes node drop the TCP segments it receives for port, with an
// nftables table of its own (gone with the lab's namespace): a connect
// there neither succeeds nor is refused until the connector gives up.
func (l *Lab) DropTCP(node string, port uint16) error {
	return l.dropTCP(node, port, "in", nftables.ChainHookInput)
}

// DropTCPOut makes node drop the TCP segments it sends to port, as
// DropTCP does: a director's health checks to its real servers then fail,
// while the frames its data plane forwards (from the ingress hook, past
// the output hook) still go.
func (l *Lab) DropTCPOut(node string, port uint16) error {
	return l.dropTCP(node, port, "out", nftables.ChainHookOutput)
}

// UndropTCP undoes DropTCP and DropTCPOut.
func (l *Lab) UndropTCP(node string) error {
	err := l.Do(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: dropTable})
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("lab %s: %s: remove table %s: %w", l.name, node, dropTable, err)
	}
	return nil
}

// dropTable is DropTCP's table.
const dropTable = "lab_drop"

func (l *Lab) dropTCP(node string, port uint16, chain string, hook *nftables.ChainHook) error {
	err := l.Do(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: dropTable})
		ch := c.AddChain(&nftables.Chain{Name: chain, Table: tab, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, // destination port
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("lab %s: drop TCP to %s port %d: %w", l.name, node, port, err)
	}
	return nil
}

// HandoverPort is the port of HandoverService.
const HandoverPort = 7070

// HandoverVRRP is a Seed004 director's instance for the planned handover
// test (test/e2e) and bench (bench/failover): VI_1, VRRPv3 at advert_int
// 0.1 (a handover, Skew_Time, takes tens of ms), VIP 172.16.0.30/24 on
// enp0s3, state BACKUP at prio, with handover_drain drain ("": the
// default).
func HandoverVRRP(prio int, drain string) string {
	extra := ""
	if drain != "" {
		extra = "    handover_drain " + drain + "\n"
	}
	return fmt.Sprintf(`vrrp_instance VI_1 {
    state BACKUP
    interface enp0s3
    virtual_router_id 51
    priority %d
    advert_int 0.1
    version 3
%s    virtual_ipaddress {
        172.16.0.30/24
    }
}
`, prio, extra)
}

// HandoverService is HandoverVRRP's virtual server: rr DR on the VIP's
// HandoverPort over Seed004's rs1 and rs2. DR is what lets a connection
// outlive a handover: both directors hash a flow to the same real server,
// which answers the client directly, so it does not matter which director
// a packet of the flow reaches, as long as that one forwards it.
var HandoverService = fmt.Sprintf(`virtual_server 172.16.0.30 %[1]d {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 172.16.0.31 %[1]d {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 172.16.0.32 %[1]d {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`, HandoverPort)
