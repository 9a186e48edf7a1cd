package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
)

// A named lab is one that outlives the process that built it: `tandem lab
// up` builds it and exits, `tandem lab exec` and `tandem lab down` find it
// again by name. Its name must not look like td<pid>x<n>, or Sweep would
// take it for the leftover of a dead test binary and remove it.

// NewNamed builds spec as New does, under a fixed name instead of
// td<pid>x<n>: the switch namespace is called name and node N's
// namespace NodeNS(name, N). It fails if any of them exists already
// (another lab of that name is up). Start writes process output under
// logDir, which Close removes.
func NewNamed(name, logDir string, spec Spec) (l *Lab, err error) {
	if !nodeNameRE.MatchString(name) || staleRE.MatchString(name) {
		return nil, fmt.Errorf("lab: name %q: want 1-32 letters, digits, '_' or '-', not of the form %s<pid>x<n> that Sweep removes", name, namePrefix)
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	l = &Lab{name: name, nodes: make(map[string]*nodeNS, len(spec.Nodes))}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return l, fmt.Errorf("lab %s: log directory: %w", name, err)
	}
	l.logDir = logDir
	if l.sw, err = createNS(name); err != nil {
		return l, err
	}
	for _, n := range spec.Nodes {
		e, err := createNS(NodeNS(name, n.Name))
		if err != nil {
			return l, err
		}
		l.nodes[n.Name] = &nodeNS{nsEntry: e, spec: n, ports: map[string][]string{}}
	}
	if err := l.wire(spec); err != nil {
		return l, err
	}
	for _, n := range spec.Nodes {
		if err := l.configure(l.nodes[n.Name]); err != nil {
			return l, err
		}
	}
	return l, l.settle()
}

// NodeNS is the `ip netns` name of node in the lab called labName, for a
// process that did not build the lab.
func NodeNS(labName, node string) string { return labName + "-" + node }

// RemoveNamed removes the namespaces of the named lab (name and name-*),
// first SIGKILLing whatever still runs in them, and returns the names it
// removed. A lab that is not there is not an error.
func RemoveNamed(name string) ([]string, error) {
	ents, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: remove: %w", name, err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if e.Name() != name && !strings.HasPrefix(e.Name(), name+"-") {
			continue
		}
		fd, err := netns.GetFromPath(filepath.Join(runDir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("lab %s: remove %s: %w", name, e.Name(), err))
			continue
		}
		if err := killInNS(fd); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: remove %s: %w", name, e.Name(), err))
		}
		if err := deleteNS(nsEntry{name: e.Name(), fd: fd}); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// StartDetached is Start for a process that must outlive this one: it
// gets a session of its own (so no terminal's SIGINT or SIGHUP reaches
// it, and its PID is its process group's ID) and no PR_SET_PDEATHSIG, and
// its output goes to logPath, which stays after Close. Close still kills
// it, so a failed `tandem lab up` leaves nothing running.
func (l *Lab) StartDetached(node, logPath, name string, args ...string) (*Proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("lab %s: start %s in %s: lab is closed", l.name, name, node)
	}
	if _, err := l.node(node); err != nil {
		return nil, err
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab %s: start %s in %s: %w", l.name, name, node, err)
	}
	defer log.Close()
	cmd := l.Command(context.Background(), node, name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab %s: start %s in %s: %w", l.name, name, node, err)
	}
	p := &Proc{node: node, argv: append([]string{name}, args...), cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	return p, nil
}

// IPPath is the path of iproute2's ip, found as Command finds it.
func IPPath() (string, error) { return ipPath() }
