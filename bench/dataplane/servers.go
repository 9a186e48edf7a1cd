package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tandem/internal/lab"
)

// statusPort is where each nginx serves stub_status, on 127.0.0.1 only,
// so that counting requests per real server adds nothing to the measured
// path.
const statusPort = 8081

// nginxConf is the real servers' configuration, the same for every case:
// one worker per CPU (so that the direct case, which loads one real server,
// is not capped by a single worker while the balanced cases get two), no
// access log, a 4-byte static body ("rs1\n") from memory, HTTP keepalive
// with nginx's default limits written out.
func nginxConf(dir, node, workers string) string {
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes %[4]s;
worker_rlimit_nofile 16384;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {
    worker_connections 8192;
}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    keepalive_timeout 65s;
    keepalive_requests 1000;
    server {
        listen 80 reuseport backlog=4096;
        location / {
            default_type text/plain;
            return 200 "%[2]s\n";
        }
    }
    server {
        listen 127.0.0.1:%[3]d;
        location / {
            stub_status;
        }
    }
}
`, dir, node, statusPort, workers)
}

// startNginx runs nginx in node and waits until it accepts connections.
func startNginx(ctx context.Context, l *lab.Lab, b bins, work, node string) (*lab.Proc, error) {
	dir := filepath.Join(work, l.Name()+"-nginx-"+node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, node, b.nginxWorkers)), 0o644); err != nil {
		return nil, err
	}
	p, err := l.Start(node, b.nginx, "-c", conf, "-p", dir)
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, "nginx on "+node, 10*time.Second, p, func() error {
		return dialFrom(l, node, netip.MustParseAddrPort("127.0.0.1:80"))
	})
	return p, err
}

// nginxRequests reads the number of requests node's nginx has served
// (stub_status), not counting the status request itself.
func nginxRequests(l *lab.Lab, node string) (int64, error) {
	body, err := l.HTTPGet(node, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), statusPort), "/", 2*time.Second)
	if err != nil {
		return 0, err
	}
	// Active connections: 1
	// server accepts handled requests
	//  5 5 5
	lines := strings.Split(body, "\n")
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "server accepts handled requests") && i+1 < len(lines) {
			f := strings.Fields(lines[i+1])
			if len(f) == 3 {
				n, err := strconv.ParseInt(f[2], 10, 64)
				return n - 1, err
			}
		}
	}
	return 0, fmt.Errorf("nginx stub_status on %s: unexpected %q", node, body)
}

// haproxyConf is the userspace peer: TCP mode, roundrobin over the two
// real servers, listening on bind. Threads are HAProxy's default (one per
// CPU), as Debian ships it.
func haproxyConf(bind netip.AddrPort, reals []netip.AddrPort) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

frontend bench
    bind %s
    default_backend reals

backend reals
    balance roundrobin
`, bind)
	for i, r := range reals {
		fmt.Fprintf(&b, "    server rs%d %s\n", i+1, r)
	}
	return b.String()
}

// startHAProxy runs haproxy in the foreground in node and waits until the
// client can connect to bind.
func startHAProxy(ctx context.Context, l *lab.Lab, bin, work, node string, bind netip.AddrPort, reals []netip.AddrPort) (*lab.Proc, error) {
	conf := filepath.Join(work, l.Name()+"-haproxy.cfg")
	if err := os.WriteFile(conf, []byte(haproxyConf(bind, reals)), 0o644); err != nil {
		return nil, err
	}
	p, err := l.Start(node, bin, "-db", "-f", conf)
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, "haproxy on "+bind.String(), 10*time.Second, p, func() error {
		return dialFrom(l, "client", bind)
	})
	return p, err
}

// tandemDaemon is `tandem run --dataplane nft|xdp` in a lab node.
type tandemDaemon struct {
	bin       string
	dataplane string
	proc      *lab.Proc
	socket    string
}

// startTandem runs tandem in node with dataplane. `ip netns exec` gives
// the process a /sys of its own, with no BPF file system, where the xdp
// data plane pins its maps: for xdp a shell mounts one there first (in
// that mount namespace only: it goes away with tandem).
func startTandem(ctx context.Context, l *lab.Lab, bin, work, node, confText, dataplane string) (*tandemDaemon, error) {
	conf := filepath.Join(work, l.Name()+"-"+node+"-keepalived.conf")
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		return nil, err
	}
	socket := filepath.Join(work, l.Name()+"-"+node+".sock")
	argv := []string{bin, "run", "-f", conf, "--socket", socket, "--dataplane", dataplane, "--log-format", "text"}
	if dataplane == "xdp" {
		argv = append([]string{"/bin/sh", "-c", `mount -t bpf bpf /sys/fs/bpf && exec "$@"`, "sh"}, argv...)
	}
	p, err := l.Start(node, argv[0], argv[1:]...)
	if err != nil {
		return nil, err
	}
	d := &tandemDaemon{bin: bin, dataplane: dataplane, proc: p, socket: socket}
	err = waitFor(ctx, "tandem's status socket", 10*time.Second, p, func() error {
		_, err := d.status(ctx)
		return err
	})
	return d, err
}

// status is the part of `tandem status --json` (internal/api.Status) that
// the bench reads. It asks the tandem binary under test rather than
// importing internal/api, so that the bench only depends on the status
// document's format.
type status struct {
	Dataplane string `json:"dataplane"`
	Instances []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"instances"`
	VirtualServers []struct {
		Name        string `json:"name"`
		RealServers []struct {
			IP      string `json:"ip"`
			Healthy bool   `json:"healthy"`
		} `json:"real_servers"`
	} `json:"virtual_servers"`
}

func (d *tandemDaemon) status(ctx context.Context) (status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var st status
	out, err := exec.CommandContext(ctx, d.bin, "status", "--json", "--socket", d.socket).Output()
	if err != nil {
		return st, fmt.Errorf("tandem status: %w", err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("tandem status --json: %w", err)
	}
	return st, nil
}

// ready reports nil once the instance (if any) is MASTER and every real
// server of vs is healthy.
func (d *tandemDaemon) ready(ctx context.Context, instance, vs string, reals int) error {
	st, err := d.status(ctx)
	if err != nil {
		return err
	}
	if !strings.Contains(st.Dataplane, d.dataplane) {
		return fmt.Errorf("data plane is %q, not %s", st.Dataplane, d.dataplane)
	}
	if instance != "" {
		state := "missing"
		for _, in := range st.Instances {
			if in.Name == instance {
				state = in.State
			}
		}
		if state != "MASTER" {
			return fmt.Errorf("instance %s is %s", instance, state)
		}
	}
	for _, v := range st.VirtualServers {
		if v.Name != vs {
			continue
		}
		healthy := 0
		for _, rs := range v.RealServers {
			if rs.Healthy {
				healthy++
			}
		}
		if healthy < reals {
			return fmt.Errorf("%d of %d real servers healthy", healthy, reals)
		}
		return nil
	}
	return fmt.Errorf("no virtual server %s", vs)
}

// realserverUp prepares a DR real server: the VIP on lo, ARP sysctls.
func realserverUp(ctx context.Context, l *lab.Lab, bin, work, node string, vip netip.Addr) error {
	dir := filepath.Join(work, l.Name()+"-rs-"+node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := l.Command(ctx, node, bin, "realserver", "up", "--vip", vip.String(), "--state-dir", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tandem realserver up on %s: %w: %s", node, err, out)
	}
	return nil
}

// dialFrom opens and closes a TCP connection to addr from node.
func dialFrom(l *lab.Lab, node string, addr netip.AddrPort) error {
	return l.Do(node, func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// servedBy makes up to n requests to addr from the client until every
// name in want has answered one.
func servedBy(l *lab.Lab, addr netip.AddrPort, want []string, n int) error {
	seen := map[string]int{}
	var errs []error
	for range n {
		body, err := l.HTTPGet("client", addr, "/", 2*time.Second)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen[strings.TrimSpace(body)]++
		all := true
		for _, w := range want {
			all = all && seen[w] > 0
		}
		if all {
			return nil
		}
	}
	return errors.Join(append([]error{fmt.Errorf("%s: %d requests, answers %v, want every one of %v", addr, n, seen, want)}, errs...)...)
}

// waitFor polls cond every 50 ms until it returns nil, p exits, ctx ends
// or limit passes.
func waitFor(ctx context.Context, what string, limit time.Duration, p *lab.Proc, cond func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if p != nil {
			select {
			case <-p.Done():
				return fmt.Errorf("%s: process exited (%v):\n%s", what, p.Wait(), p.Output())
			default:
			}
		}
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				out = "\n" + tail(p.Output(), 2000)
			}
			return fmt.Errorf("%s: not ready after %v: %w%s", what, limit, err, out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
