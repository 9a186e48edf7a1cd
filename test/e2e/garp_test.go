package e2e

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tandem/internal/lab"
)

// garpWatch records, from node's namespace, the gratuitous ARPs (sender
// and target address equal) seen on the segment, with when they came.
type garpWatch struct {
	mu   sync.Mutex
	seen []garpSeen
}

type garpSeen struct {
	at   time.Time
	addr netip.Addr
}

func watchGARP(t *testing.T, l *lab.Lab, node string) *garpWatch {
	t.Helper()
	var fd int
	if err := l.Do(node, func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A receive timeout lets the reader see that the test is over.
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	w := &garpWatch{}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // the timeout (EAGAIN) or an interrupted call
			}
			// ARP for IPv4 over Ethernet: sender IP at 14, target IP at 24.
			if n < 28 || binary.BigEndian.Uint16(buf[6:8]) > 2 {
				continue
			}
			snd, tgt := netip.AddrFrom4([4]byte(buf[14:18])), netip.AddrFrom4([4]byte(buf[24:28]))
			if snd == tgt {
				w.mu.Lock()
				w.seen = append(w.seen, garpSeen{time.Now(), snd})
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		unix.Close(fd)
	})
	return w
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (w *garpWatch) got() []garpSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]garpSeen(nil), w.seen...)
}

// TestGarpGroupOnTheWire: two instances becoming master together on an
// interface of a garp_group put their gratuitous ARPs on the segment
// garp_interval apart, not in one burst.
func TestGarpGroupOnTheWire(t *testing.T) {
	l := lab.NewT(t, lab.Spec{Nodes: []lab.Node{
		{Name: "d1", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.82.0.1/24")}}}},
		{Name: "obs", Ifaces: []lab.Iface{{Name: "eth0", Switch: "s", Addrs: []netip.Prefix{netip.MustParsePrefix("10.82.0.9/24")}}}},
	}})
	w := watchGARP(t, l, "obs")
	inst := func(name string, vip string) string {
		return `vrrp_instance ` + name + ` {
    state MASTER
    interface eth0
    virtual_router_id ` + vip[len(vip)-3:] + `
    priority 255
    advert_int 1
    garp_master_repeat 2
    garp_master_delay 0
    virtual_ipaddress {
        ` + vip + `/24
    }
}
`
	}
	conf := "garp_group {\n    garp_interval 0.2\n    interface eth0\n}\n" + inst("VI_1", "10.82.0.101") + inst("VI_2", "10.82.0.102")
	d := startTandem(t, l, "d1", writeConf(t, "garp.conf", conf), "--dataplane", "none")
	waitFor(t, "both masters", 15*time.Second, func() bool { return d.state("VI_1") == "MASTER" && d.state("VI_2") == "MASTER" })
	waitFor(t, "4 gratuitous ARPs", 10*time.Second, func() bool { return len(w.got()) >= 4 })
	seen := w.got()
	for i := 1; i < len(seen); i++ {
		// 200 ms apart as sent; 50 ms of slack for the receiving side.
		if gap := seen[i].at.Sub(seen[i-1].at); gap < 150*time.Millisecond {
			t.Errorf("gratuitous ARPs %d (%s) and %d (%s) %v apart, want garp_interval 200ms", i-1, seen[i-1].addr, i, seen[i].addr, gap)
		}
	}
}
