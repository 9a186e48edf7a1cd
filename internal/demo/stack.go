// Package demo is `tandem lab`: seed000's director pair, real servers and
// client in network namespaces, either running the seeds' three tests
// (health check, failover, recovery) and tearing everything down (Run), or
// left up for exploration (Up, Exec, Down).
package demo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"tandem/examples"
	"tandem/internal/api"
	"tandem/internal/lab"
)

// The built-in example pair: seed000's configurations.
const (
	exampleMaster = "seed000-lvs-dr-master.conf"
	exampleBackup = "seed000-lvs-dr-backup.conf"
)

// Web server choices for the real servers.
const (
	WebAuto    = "auto"    // nginx when installed, else the built-in server
	WebNginx   = "nginx"   // nginx, required
	WebBuiltin = "builtin" // `tandem lab serve`
)

// Options configure Run and Up.
type Options struct {
	// Configs are the MASTER and BACKUP configurations, for dir1 and
	// dir2; both empty means the built-in examples.
	Configs [2]string
	// Bin is the tandem binary run in the nodes (os.Executable()).
	Bin string
	// Web is WebAuto, WebNginx or WebBuiltin.
	Web string
	// ScaleOut, when positive, builds the scale-out lab (lab.ScaleOut)
	// with that many directors instead of seed000's pair.
	ScaleOut int
	Out      io.Writer
}

// ConfigArgs turns the command line's files into Options.Configs: none
// (the built-in seed000 pair) or MASTER and BACKUP.
func ConfigArgs(args []string) ([2]string, error) {
	switch len(args) {
	case 0:
		return [2]string{}, nil
	case 2:
		return [2]string{args[0], args[1]}, nil
	}
	return [2]string{}, fmt.Errorf("configuration files: want none (the built-in seed000 pair) or two, MASTER.conf and BACKUP.conf; got %d", len(args))
}

// needs is what the host offers the lab; check turns it into one line
// naming everything missing.
type needs struct {
	euid  int
	ipErr error  // from lab.IPPath
	nginx string // nginx's path, "" when not installed
}

func probe() needs {
	_, ipErr := lab.IPPath()
	return needs{euid: os.Geteuid(), ipErr: ipErr, nginx: findNginx()}
}

// findNginx looks in PATH and then in /usr/sbin, which sudo's and some
// users' PATH lack.
func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// check returns the nginx binary to use ("" for the built-in server) or
// one error naming every missing requirement. It installs nothing.
func (n needs) check(web string) (string, error) {
	var missing []string
	if n.euid != 0 {
		missing = append(missing, "root (network namespaces need it: run with sudo)")
	}
	if n.ipErr != nil {
		missing = append(missing, "iproute2's ip (apt-get install iproute2)")
	}
	nginx := ""
	switch web {
	case WebAuto:
		nginx = n.nginx
	case WebNginx:
		if n.nginx == "" {
			missing = append(missing, "nginx (apt-get install nginx-light, or --web builtin)")
		}
		nginx = n.nginx
	case WebBuiltin:
	default:
		return "", fmt.Errorf("--web %q: want auto, nginx or builtin", web)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("needs %s", strings.Join(missing, ", "))
	}
	return nginx, nil
}

// configFiles returns the two configuration paths to run and how to name
// them to the user. The built-in examples are written to dir.
func configFiles(cfgs [2]string, dir string) (paths, names [2]string, err error) {
	if cfgs != [2]string{} {
		for i, c := range cfgs {
			abs, err := filepath.Abs(c)
			if err != nil {
				return paths, names, fmt.Errorf("configuration %s: %w", c, err)
			}
			if _, err := os.Stat(abs); err != nil {
				return paths, names, fmt.Errorf("configuration: %w", err)
			}
			paths[i], names[i] = abs, c
		}
		return paths, names, nil
	}
	for i, name := range []string{exampleMaster, exampleBackup} {
		b, err := fs.ReadFile(examples.FS, name)
		if err != nil {
			return paths, names, fmt.Errorf("built-in example %s: %w", name, err)
		}
		paths[i] = filepath.Join(dir, name)
		if err := os.WriteFile(paths[i], b, 0o644); err != nil {
			return paths, names, fmt.Errorf("built-in example: %w", err)
		}
		names[i] = "examples/" + name + " (built in)"
	}
	return paths, names, nil
}

// starter starts a process in a lab node: Lab.Start for the demo,
// Lab.StartDetached for `lab up`.
type starter func(node, name string, args ...string) (*lab.Proc, error)

// stack is a lab built and populated: real servers carrying the VIP and
// serving HTTP, the directors running tandem (seed000's pair, or the
// scale-out lab's directors behind their router).
type stack struct {
	l      *lab.Lab
	layout lab.Layout
	bin    string
	dir    string // configurations, sockets, web roots
	nginx  string // "" for the built-in server
	start  starter

	web  map[string]*lab.Proc // by real-server node
	dirs []*director          // layout.Directors' (seed000: dir1 MASTER, dir2 BACKUP)
	bird *lab.Bird            // the scale-out lab's router
}

type director struct {
	node, conf, socket string
	proc               *lab.Proc
}

func newStack(l *lab.Lab, layout lab.Layout, bin, dir, nginx string, start starter) *stack {
	return &stack{l: l, layout: layout, bin: bin, dir: dir, nginx: nginx, start: start, web: map[string]*lab.Proc{},
		dirs: make([]*director, len(layout.Directors))}
}

func (s *stack) vip() netip.Addr { return s.layout.VIPs[0] }

// webName is what the real servers run, for messages.
func (s *stack) webName() string {
	if s.nginx != "" {
		return "nginx"
	}
	return "built-in web server"
}

// startReals prepares every real server (prepareReal) and starts its web
// server.
func (s *stack) startReals(ctx context.Context, p *progress) error {
	for _, h := range s.layout.Reals {
		if err := s.prepareReal(ctx, h.Name); err != nil {
			return err
		}
		if err := s.startWeb(ctx, h.Name); err != nil {
			return err
		}
		p.step("%s: VIP %s on lo (tandem realserver up), %s on :80", h.Name, s.vip(), s.webName())
	}
	return nil
}

// prepareReal does on a real server what the seed's lvs-web.sh does, with
// `tandem realserver up`: the VIP on lo, arp_ignore and arp_announce.
func (s *stack) prepareReal(ctx context.Context, node string) error {
	stateDir := filepath.Join(s.dir, node, "realserver")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := s.l.Command(ctx, node, s.bin, "realserver", "up", "--vip", s.vip().String(), "--state-dir", stateDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: tandem realserver up: %w: %s", node, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startWeb runs the web server of a real server, answering every request
// with the node's name, and waits until it accepts connections.
func (s *stack) startWeb(ctx context.Context, node string) error {
	var p *lab.Proc
	var err error
	if s.nginx != "" {
		root := filepath.Join(s.dir, node, "nginx")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return fmt.Errorf("%s: nginx directory: %w", node, err)
		}
		conf := filepath.Join(root, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(root, node)), 0o644); err != nil {
			return fmt.Errorf("%s: nginx configuration: %w", node, err)
		}
		// -e: nginx opens its compiled-in error log before it reads
		// the configuration; keep it in our directory.
		p, err = s.start(node, s.nginx, "-c", conf, "-p", root, "-e", filepath.Join(root, "error.log"))
	} else {
		p, err = s.start(node, s.bin, "lab", "serve", "--name", node, "--port", "80")
	}
	if err != nil {
		return err
	}
	s.web[node] = p
	err = s.waitProc(ctx, p, 5*time.Second, func() bool {
		return s.l.Do(node, func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:80", 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})
	if err != nil {
		return fmt.Errorf("%s: %s on :80: %w", node, s.webName(), err)
	}
	return nil
}

// nginxConf serves "<node>\n" on port 80 with every path under root, so
// that nginx needs nothing of the host's /etc/nginx or /var.
func nginxConf(root, node string) string {
	return lab.NginxConf(root, fmt.Sprintf(`    server {
        listen 80;
        location / {
            return 200 "%s\n";
        }
    }`, node))
}

// startDirector runs `tandem run` on layout.Directors[i] and waits for its
// status socket.
func (s *stack) startDirector(ctx context.Context, i int, conf string) error {
	node := s.layout.Directors[i].Name
	d := &director{node: node, conf: conf, socket: filepath.Join(s.dir, node+".sock")}
	p, err := s.start(node, s.bin, "run", "-f", conf, "--socket", d.socket, "--log-format", "text")
	if err != nil {
		return err
	}
	d.proc = p
	s.dirs[i] = d
	err = s.waitProc(ctx, p, 10*time.Second, func() bool {
		_, err := d.status(ctx)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("%s: tandem run -f %s: status socket: %w", node, conf, err)
	}
	return nil
}

// waitProc is waitFor that gives up early, with the process's output,
// when p exits.
func (s *stack) waitProc(ctx context.Context, p *lab.Proc, timeout time.Duration, cond func() bool) error {
	_, err := waitFor(ctx, timeout, func() bool {
		select {
		case <-p.Done():
			return true
		default:
		}
		return cond()
	})
	select {
	case <-p.Done():
		return fmt.Errorf("exited (%v):\n%s", p.Wait(), indent(tail(p.Output(), 20)))
	default:
	}
	return err
}

func (d *director) status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return api.Fetch(ctx, d.socket)
}

// state is the first VRRP instance's state, "DOWN" when the daemon does
// not answer.
func (d *director) state(ctx context.Context) string {
	st, err := d.status(ctx)
	if err != nil || len(st.Instances) == 0 {
		return "DOWN"
	}
	return st.Instances[0].State
}

// is reports whether the director says that real server ip of its first
// virtual server is healthy (want true) or not (want false); it is false
// when the director does not answer.
func (d *director) is(ctx context.Context, ip netip.Addr, want bool) bool {
	st, err := d.status(ctx)
	if err != nil || len(st.VirtualServers) == 0 {
		return false
	}
	for _, rs := range st.VirtualServers[0].RealServers {
		if rs.IP == ip.String() {
			return rs.Healthy == want
		}
	}
	return false
}

// service checks that the configuration runs the service the lab is built
// for (a virtual server on the VIP whose real servers are the lab's) and
// returns its address.
func (s *stack) service(ctx context.Context) (netip.AddrPort, error) {
	st, err := s.dirs[0].status(ctx)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if len(st.Instances) == 0 || len(st.VirtualServers) == 0 {
		return netip.AddrPort{}, fmt.Errorf("%s: want a vrrp_instance and a virtual_server; the configuration has %d and %d", s.dirs[0].conf, len(st.Instances), len(st.VirtualServers))
	}
	vs := st.VirtualServers[0]
	addr, err := netip.ParseAddr(vs.VIP)
	if err != nil || addr != s.vip() || vs.Port != 80 {
		return netip.AddrPort{}, fmt.Errorf("%s: virtual server %s: the lab (seed000's layout) serves %s:80", s.dirs[0].conf, vs.Name, s.vip())
	}
	for _, rs := range vs.RealServers {
		if s.realNode(rs.IP) == "" || rs.Port != 80 {
			return netip.AddrPort{}, fmt.Errorf("%s: real server %s:%d: the lab's are %s and %s on port 80", s.dirs[0].conf, rs.IP, rs.Port, s.layout.Reals[0].Addr, s.layout.Reals[1].Addr)
		}
	}
	return netip.AddrPortFrom(addr, 80), nil
}

// realNode is the real-server node with address ip, or "".
func (s *stack) realNode(ip string) string {
	i := slices.IndexFunc(s.layout.Reals, func(h lab.Host) bool { return h.Addr.String() == ip })
	if i < 0 {
		return ""
	}
	return s.layout.Reals[i].Name
}

// realAddr is the address of real-server node.
func (s *stack) realAddr(node string) netip.Addr {
	for _, h := range s.layout.Reals {
		if h.Name == node {
			return h.Addr
		}
	}
	return netip.Addr{}
}

// get fetches http://addr/ from the client and returns the body (the real
// server's name).
func (s *stack) get(addr netip.AddrPort, dialTimeout time.Duration) (string, error) {
	return s.l.HTTPGet(s.layout.Client.Name, addr, "/", dialTimeout)
}

// waitFor polls cond every 50 ms until it holds (returning how long that
// took), timeout passes or ctx is done.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for {
		ok := cond()
		// ctx before ok: a condition may hold only because ctx is done
		// (a status request that failed).
		if err := ctx.Err(); err != nil {
			return time.Since(start), err
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("not within %v", timeout)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
