package bpfgo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Interfaces keeps the datapath attached to a set of interfaces while they
// come and go: a VLAN or bond that is recreated, a NIC that is replaced.
type Interfaces struct {
	c        *Counters
	xdpMode  XDPMode
	tcMode   TCMode
	log      *slog.Logger
	names    []string
	mu       sync.Mutex
	attached map[string]*Attachment
	failing  map[string]string // interface -> the last error logged
	closed   bool
	// attachErrors counts the failed attempts to attach again.
	attachErrors uint64
}

// AttachAll attaches to every interface in names; all of them must exist
// at start. On failure nothing stays attached.
func (c *Counters) AttachAll(names []string, xdp XDPMode, tc TCMode, log *slog.Logger) (*Interfaces, error) {
	s := &Interfaces{
		c: c, xdpMode: xdp, tcMode: tc, log: log, names: names,
		attached: map[string]*Attachment{}, failing: map[string]string{},
	}
	for _, name := range names {
		a, err := c.Attach(name, xdp, tc)
		if err != nil {
			s.detachAttached()
			return nil, err
		}
		s.attached[name] = a
		s.logAttached(a, "counting")
	}
	// Only once the new list counts: a start that fails on a mistyped
	// name leaves the interfaces of the last good one counting.
	if err := c.detachDropped(names, log); err != nil {
		s.detachAttached()
		return nil, err
	}
	return s, nil
}

// detachAttached undoes a start that failed: nothing it attached stays.
func (s *Interfaces) detachAttached() {
	for _, a := range s.attached {
		a.Detach()
	}
}

func (s *Interfaces) logAttached(a *Attachment, msg string) {
	s.log.Info(msg, "interface", a.Interface, "xdp", a.XDPMode, "tc", a.TCMode, "kept_pinned_links", a.Kept)
}

// Watch checks the interfaces every interval until ctx is done: one that
// disappeared is logged and attached again when it is back.
func (s *Interfaces) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, name := range s.names {
				s.check(name)
			}
		}
	}
}

func (s *Interfaces) check(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	ifc, err := net.InterfaceByName(name)
	a := s.attached[name]
	if a != nil && err == nil && ifc.Index == a.Index {
		return
	}
	if a != nil {
		// The interface went away (or came back under a new index): its
		// links died with it. Drop them and their pins.
		s.log.Warn("interface is gone; counting resumes when it is back", "interface", name)
		a.Detach()
		delete(s.attached, name)
	}
	if err != nil {
		return
	}
	a, err = s.c.Attach(name, s.xdpMode, s.tcMode)
	if err != nil {
		s.attachErrors++
		if s.failing[name] != err.Error() {
			s.log.Error("attach again", "interface", name, "err", err)
			s.failing[name] = err.Error()
		}
		return
	}
	delete(s.failing, name)
	s.attached[name] = a
	s.logAttached(a, "interface is back, counting again")
}

// Close lets go of every interface: without pinning the programs are
// detached; pinned links stay and keep counting.
func (s *Interfaces) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for name, a := range s.attached {
		errs = append(errs, a.Close())
		delete(s.attached, name)
	}
	return errors.Join(errs...)
}

// detachDropped detaches the pinned links of every interface an earlier
// run counted on that is not in names: left attached they would go on
// counting into maps this run drains, on an interface the operator took
// out of INTERFACE.
func (c *Counters) detachDropped(names []string, log *slog.Logger) error {
	if c.pinPath == "" {
		return nil
	}
	dirs, err := os.ReadDir(filepath.Join(c.pinPath, "links"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list pinned links: %w", err)
	}
	for _, d := range dirs {
		if slices.Contains(names, d.Name()) {
			continue
		}
		err := errors.Join(c.detachPinned(d.Name()), os.RemoveAll(filepath.Join(c.pinPath, "links", d.Name())))
		if err != nil {
			return fmt.Errorf("detach from %s, which is no longer in INTERFACE: %w", d.Name(), err)
		}
		log.Info("detached from an interface no longer in INTERFACE", "interface", d.Name())
	}
	return nil
}

// DetachAll removes what collector left in the kernel: under pinPath the
// links of every interface (detaching the programs), the clsact qdiscs we
// added and the pinned maps; on every interface in ifaces and every pinned
// one, our legacy TC filter, which outlives the process even unpinned. It
// is what `collector detach` and uninstalling do; no daemon need run.
func DetachAll(pinPath string, ifaces []string) error {
	c := &Counters{pinPath: pinPath, log: slog.New(slog.DiscardHandler)}
	dirs, err := os.ReadDir(filepath.Join(pinPath, "links"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	names := slices.Clone(ifaces)
	for _, d := range dirs {
		names = append(names, d.Name())
	}
	slices.Sort(names)
	var errs []error
	for _, name := range slices.Compact(names) {
		errs = append(errs, c.detachPinned(name))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(pinPath); err != nil {
		return fmt.Errorf("remove pins: %w", err)
	}
	return nil
}

func (c *Counters) detachPinned(iface string) error {
	a := &Attachment{Interface: iface, pinned: true}
	var errs []error
	for _, name := range linkPins {
		l, err := loadPinnedLink(c.pin(a, name))
		if err != nil {
			errs = append(errs, err)
		}
		if l != nil {
			// Detach at once, even while a daemon still holds the link
			// open; a link whose interface is gone is detached already.
			l.Detach()
			a.links = append(a.links, l)
		}
	}
	if ifc, err := net.InterfaceByName(iface); err == nil {
		a.legacy, err = newLegacyTC(ifc.Index, c.pin(a, legacyMarker))
		errs = append(errs, err)
	}
	errs = append(errs, a.Detach())
	return errors.Join(errs...)
}
