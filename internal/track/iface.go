package track

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"tandem/internal/config"
	"tandem/internal/netio"
)

// InstanceInterfaces is the interfaces instance in tracks: its
// track_interface list and, unless dont_track_primary is set, its own
// interface with weight 0, since keepalived puts an instance in FAULT when
// its interface goes down (keepalived.conf(5) dont_track_primary).
func InstanceInterfaces(in *config.Instance) []config.TrackRef {
	refs := append([]config.TrackRef(nil), in.TrackInterfaces...)
	if in.DontTrackPrimary || in.Interface == "" {
		return refs
	}
	for _, r := range refs {
		if r.Name == in.Interface {
			return refs
		}
	}
	return append(refs, config.TrackRef{Pos: in.Pos, Name: in.Interface})
}

// Interface follows the link state of one network interface over rtnetlink.
type Interface struct {
	name string
	ns   *netns.NsHandle
	log  *slog.Logger
}

// NewInterface watches the interface called name in network namespace ns.
// A nil ns means the namespace of the OS thread that calls Run, which for a
// goroutine that has not locked its thread is the process's namespace.
func NewInterface(name string, ns *netns.NsHandle, log *slog.Logger) *Interface {
	return &Interface{name: name, ns: ns, log: log.With("interface", name)}
}

// Run sends the interface's state at once and again whenever it changes,
// until ctx ends. A missing interface is down; one that appears later is
// picked up by name.
func (t *Interface) Run(ctx context.Context, out chan<- Update) error {
	ch := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	subErr := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{
		Namespace: t.ns,
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	}
	// Subscribe before reading the initial state so no change is lost.
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		close(done)
		return fmt.Errorf("track_interface %s: subscribe: %w", t.name, err)
	}
	defer func() {
		close(done)
		for range ch { // wait for the receiving goroutine to end
		}
	}()

	up, index, err := t.initial()
	if err != nil {
		return err
	}
	if !send(ctx, out, Update{Kind: KindInterface, Name: t.name, OK: up}) {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-ch:
			if !ok {
				err := errors.New("subscription closed")
				select {
				case err = <-subErr:
				default:
				}
				return fmt.Errorf("track_interface %s: %w", t.name, err)
			}
			if u.Link == nil {
				continue
			}
			// The interface is followed by name, as configured; its index
			// shows when it is renamed away, which makes it missing.
			now := false
			switch a := u.Attrs(); {
			case a.Name == t.name && u.Header.Type == unix.RTM_DELLINK:
				index = 0
			case a.Name == t.name:
				index = a.Index
				now = netio.LinkUp(u.IfInfomsg.Flags)
			case index != 0 && a.Index == index:
				index = 0
			default:
				continue
			}
			if now == up {
				continue
			}
			up = now
			t.log.Info("interface state changed", "up", up)
			if !send(ctx, out, Update{Kind: KindInterface, Name: t.name, OK: up}) {
				return nil
			}
		}
	}
}

// initial reads the interface's state and index now; a missing interface
// is down, with index 0.
func (t *Interface) initial() (up bool, index int, err error) {
	h := &netlink.Handle{}
	if t.ns != nil {
		if h, err = netlink.NewHandleAt(*t.ns); err != nil {
			return false, 0, fmt.Errorf("track_interface %s: netlink handle: %w", t.name, err)
		}
		defer h.Close()
	}
	l, err := h.LinkByName(t.name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		t.log.Warn("tracked interface does not exist; down until it appears")
		return false, 0, nil
	case err != nil:
		return false, 0, fmt.Errorf("track_interface %s: %w", t.name, err)
	}
	return netio.LinkUp(l.Attrs().RawFlags), l.Attrs().Index, nil
}
