package bpfgo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// XDPMode is how the ingress program is attached.
type XDPMode string

// XDP modes: native runs in the driver, generic in the kernel's network
// stack (every driver, slower, and the kernel turns GRO off on a device
// while a generic XDP program runs there). XDPViaTC uses no XDP: a TC
// ingress program counts instead, after GRO, from the number of frames GRO
// merged into each packet. Auto is native where the driver has it, else
// TC ingress: without GRO the host spends more CPU per byte received than
// counting after GRO costs (README, BenchmarkHostReceive).
const (
	XDPAuto    XDPMode = "auto"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
	XDPViaTC   XDPMode = "tc"
)

// TCMode is how the egress program is attached.
type TCMode string

// TC modes: tcx is the kernel's link-based TC (6.6+); legacy is a cls_bpf
// filter under a clsact qdisc (older kernels); auto picks tcx where the
// kernel has it.
const (
	TCAuto   TCMode = "auto"
	TCX      TCMode = "tcx"
	TCLegacy TCMode = "legacy"
)

// JumboMTU is the MTU above which a frame may span several buffers and the
// multi-buffer XDP program is used. Below it the single-buffer program
// saves a helper call per packet.
const JumboMTU = 1500

// Attachment is the datapath attached to one interface.
type Attachment struct {
	Interface string
	Index     int
	XDPMode   XDPMode // the mode in use: native, generic or tc
	TCMode    TCMode  // the mode in use: tcx or legacy
	// Kept is set when pinned links of an earlier run were still attached
	// and were taken over (their program replaced in place) rather than
	// attached again, which some drivers answer with a link reset.
	Kept bool

	links  []link.Link
	legacy *legacyTC
	// legacyParents are the clsact hooks our filters are on.
	legacyParents []uint32
	pinned        bool
}

// tcHook is a TC attach point: TCX where the kernel has it, else a clsact
// hook.
type tcHook struct {
	name   string
	tcx    ebpf.AttachType
	parent uint32
	pin    string // the pin name of its TCX link
}

var (
	egressHook  = tcHook{"egress", ebpf.AttachTCXEgress, netlink.HANDLE_MIN_EGRESS, "tcx"}
	ingressHook = tcHook{"ingress", ebpf.AttachTCXIngress, netlink.HANDLE_MIN_INGRESS, "tcx-ingress"}
)

// linkPins are the pin names of every link Attach may make.
var linkPins = []string{"xdp", egressHook.pin, ingressHook.pin}

// Attach attaches the ingress and egress programs to iface. With a pin
// path the links are pinned, and links pinned by an earlier run are taken
// over. On failure nothing new stays attached and the error names the
// interface, the mode and the kernel's reason.
func (c *Counters) Attach(iface string, xdpMode XDPMode, tcMode TCMode) (*Attachment, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w (ip -br link lists the interfaces)", iface, err)
	}
	a := &Attachment{Interface: iface, Index: ifc.Index, pinned: c.pinPath != ""}
	if a.pinned {
		if err := os.MkdirAll(c.linkDir(iface), 0o700); err != nil {
			return nil, fmt.Errorf("create link pin directory: %w", err)
		}
	}
	if a.legacy, err = newLegacyTC(a.Index, c.pin(a, legacyMarker)); err != nil {
		return nil, err
	}
	if xdpMode == XDPViaTC {
		err = c.attachIngressTC(a, tcMode)
	} else {
		err = c.attachXDP(a, ifc, xdpMode)
	}
	if errors.Is(err, errNoNativeXDP) {
		c.log.Info("native xdp unavailable, counting ingress with tc: generic xdp would turn GRO off on the interface, which costs the host more",
			"interface", a.Interface, "reason", err)
		err = c.attachIngressTC(a, tcMode)
	}
	if err == nil {
		err = c.attachTC(a, tcMode, egressHook, c.tc)
	}
	if err == nil {
		err = c.dropUnused(a)
	}
	if err != nil {
		a.Detach()
		return nil, err
	}
	return a, nil
}

// linkDir is where the links of iface are pinned.
func (c *Counters) linkDir(iface string) string {
	return filepath.Join(c.pinPath, "links", iface)
}

func (c *Counters) pin(a *Attachment, name string) string {
	if !a.pinned {
		return ""
	}
	return filepath.Join(c.linkDir(a.Interface), name)
}

// attachIngressTC counts ingress with a TC program instead of XDP.
func (c *Counters) attachIngressTC(a *Attachment, tcMode TCMode) error {
	a.XDPMode = XDPViaTC
	return c.attachTC(a, tcMode, ingressHook, c.tcIngress)
}

// errNoNativeXDP is attachXDP's answer in auto mode where the driver
// refused native XDP: Attach counts ingress with TC then.
var errNoNativeXDP = errors.New("no native xdp")

func (c *Counters) attachXDP(a *Attachment, ifc *net.Interface, mode XDPMode) error {
	prog := c.xdp
	if ifc.MTU > JumboMTU && c.xdpFrag != nil {
		prog = c.xdpFrag
	}
	pin := c.pin(a, "xdp")
	l, err := c.takeOver(pin, a.Index, prog)
	if err != nil {
		return fmt.Errorf("take over pinned xdp link on %s: %w", a.Interface, err)
	}
	if l != nil {
		inUse := xdpModeInUse(a.Index)
		// A generic link of an earlier run is no longer auto's choice.
		auto := (mode == XDPAuto || mode == "") && inUse != XDPGeneric
		if auto || mode == inUse {
			a.links, a.Kept, a.XDPMode = append(a.links, l), true, inUse
			return nil
		}
		// The operator asked for another mode than the pinned link runs
		// in, or auto found generic: that takes a new attachment.
		c.log.Info("xdp mode changed, attaching again", "interface", a.Interface, "from", inUse, "to", mode)
		if err := errors.Join(l.Unpin(), l.Close()); err != nil {
			return fmt.Errorf("replace pinned xdp link on %s: %w", a.Interface, err)
		}
	}

	try := func(m XDPMode) error {
		flags := link.XDPDriverMode
		if m == XDPGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: a.Index, Flags: flags})
		if err != nil {
			return fmt.Errorf("attach xdp %s on %s: %w%s", m, a.Interface, err, xdpHint(err))
		}
		if err := keep(l, pin); err != nil {
			return fmt.Errorf("pin xdp link on %s: %w", a.Interface, err)
		}
		a.links, a.XDPMode = append(a.links, l), m
		if m == XDPGeneric {
			// The kernel elides GRO on a device with a generic XDP
			// program: counts stay exact, the host loses GRO.
			c.log.Info("generic xdp turns GRO off on this interface; XDP_MODE=tc counts as exactly and keeps it", "interface", a.Interface)
		}
		return nil
	}
	switch mode {
	case XDPNative, XDPGeneric:
		return try(mode)
	case XDPAuto, "":
		err := try(XDPNative)
		if err == nil || errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return err
		}
		return fmt.Errorf("%w: %w", errNoNativeXDP, err)
	}
	return fmt.Errorf("xdp mode %q: accepted are auto, native, generic, tc", mode)
}

func xdpHint(err error) string {
	switch {
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
		return " (another XDP program is attached there; `ip link show` names it)"
	case errors.Is(err, unix.EPERM):
		return " (needs root or CAP_BPF and CAP_NET_ADMIN)"
	}
	return ""
}

// xdpModeInUse asks the kernel how the XDP program on ifindex runs.
func xdpModeInUse(ifindex int) XDPMode {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil {
		return ""
	}
	// IFLA_XDP_ATTACHED values from linux/if_link.h.
	const attachedDrv, attachedSkb = 1, 2
	switch l.Attrs().Xdp.AttachMode {
	case attachedDrv:
		return XDPNative
	case attachedSkb:
		return XDPGeneric
	}
	return ""
}

// attachTC attaches prog at hook: by TCX, taking over a pinned TCX link,
// or with TC_MODE=legacy (or auto on a kernel without TCX) as a cls_bpf
// filter.
func (c *Counters) attachTC(a *Attachment, mode TCMode, hook tcHook, prog *ebpf.Program) error {
	switch mode {
	case TCAuto, "", TCX:
	case TCLegacy:
		return c.attachLegacy(a, hook, prog)
	default:
		return fmt.Errorf("tc mode %q: accepted are auto, tcx, legacy", mode)
	}

	pin := c.pin(a, hook.pin)
	l, err := c.takeOver(pin, a.Index, prog)
	if err != nil {
		return fmt.Errorf("take over pinned tcx link on %s: %w", a.Interface, err)
	}
	if l != nil {
		a.Kept = true
	} else {
		// Ours goes first: it passes every packet on (TCX_NEXT), and no
		// program before it can end the chain and hide packets from it.
		l, err = link.AttachTCX(link.TCXOptions{Interface: a.Index, Program: prog, Attach: hook.tcx, Anchor: link.Head()})
		if errors.Is(err, ebpf.ErrNotSupported) && mode != TCX {
			c.log.Info("kernel has no tcx, using a clsact qdisc and cls_bpf filter", "interface", a.Interface, "hook", hook.name)
			return c.attachLegacy(a, hook, prog)
		}
		if err != nil {
			hint := ""
			if errors.Is(err, ebpf.ErrNotSupported) {
				hint = " (this kernel has no TCX, which needs 6.6; use TC_MODE=legacy)"
			}
			return fmt.Errorf("attach tcx %s on %s: %w%s", hook.name, a.Interface, err, hint)
		}
		if err := keep(l, pin); err != nil {
			return fmt.Errorf("pin tcx link on %s: %w", a.Interface, err)
		}
	}
	a.links, a.TCMode = append(a.links, l), TCX
	return nil
}

// legacyMarker names the marker directory that says the clsact qdisc on an
// interface was added by us.
const legacyMarker = "clsact-ours"

func (c *Counters) attachLegacy(a *Attachment, hook tcHook, prog *ebpf.Program) error {
	if err := a.legacy.add(hook.parent, prog); err != nil {
		return fmt.Errorf("attach tc legacy %s on %s: %w", hook.name, a.Interface, err)
	}
	a.legacyParents, a.TCMode = append(a.legacyParents, hook.parent), TCLegacy
	return nil
}

// dropUnused removes what an earlier run in other modes left on the
// interface and this one does not use: our legacy filters, and pinned
// links. Left in place they would count the same packets a second time,
// into maps nobody drains.
func (c *Counters) dropUnused(a *Attachment) error {
	var stale []uint32
	for _, p := range legacyParents {
		if !slices.Contains(a.legacyParents, p) {
			stale = append(stale, p)
		}
	}
	if err := a.legacy.remove(stale...); err != nil {
		return fmt.Errorf("remove an earlier legacy tc filter on %s: %w", a.Interface, err)
	}
	if !a.pinned {
		return nil
	}
	used := make([]string, 0, len(a.links))
	for _, l := range a.links {
		used = append(used, pinName(l))
	}
	for _, name := range linkPins {
		if slices.Contains(used, name) {
			continue
		}
		l, err := loadPinnedLink(c.pin(a, name))
		if err == nil && l != nil {
			c.log.Info("removing a link of an earlier run in another mode", "interface", a.Interface, "link", name)
			err = errors.Join(l.Unpin(), l.Close())
		}
		if err != nil {
			return fmt.Errorf("remove an earlier %s link on %s: %w", name, a.Interface, err)
		}
	}
	return nil
}

// pinName is the pin name of one of our links.
func pinName(l link.Link) string {
	info, err := l.Info()
	switch {
	case err != nil:
		return ""
	case info.XDP() != nil:
		return "xdp"
	case info.TCX() != nil && ebpf.AttachType(info.TCX().AttachType) == ebpf.AttachTCXIngress:
		return ingressHook.pin
	}
	return egressHook.pin
}

// takeOver returns the link pinned at pin when it is still attached to
// ifindex, with prog swapped in atomically: counting goes on without a
// gap and the interface never sees a detach. It returns nil when there is
// nothing to take over (no pin, or a link whose interface is gone, which
// it unpins).
func (c *Counters) takeOver(pin string, ifindex int, prog *ebpf.Program) (link.Link, error) {
	if pin == "" {
		return nil, nil
	}
	l, err := loadPinnedLink(pin)
	if l == nil || err != nil {
		return nil, err
	}
	if linkIfindex(l) != ifindex {
		c.log.Info("removing a pinned link whose interface is gone", "pin", pin)
		return nil, errors.Join(l.Unpin(), l.Close())
	}
	if err := l.Update(prog); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// loadPinnedLink returns the link pinned at pin, or nil when there is none.
func loadPinnedLink(pin string) (link.Link, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return l, err
}

func linkIfindex(l link.Link) int {
	info, err := l.Info()
	if err != nil {
		return 0
	}
	if x := info.XDP(); x != nil {
		return int(x.Ifindex)
	}
	if t := info.TCX(); t != nil {
		return int(t.Ifindex)
	}
	return 0
}

// keep pins l at pin, when pinning.
func keep(l link.Link, pin string) error {
	if pin == "" {
		return nil
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return err
	}
	return nil
}

// Close lets go of the interface. Without pinning that detaches the
// programs; pinned links (and a legacy filter, with pinning) stay attached
// and keep counting into the pinned maps for the next start to drain.
func (a *Attachment) Close() error {
	var errs []error
	for _, l := range a.links {
		if !a.pinned {
			// Closing the last descriptor detaches too, but later,
			// from a kernel work queue: detach now, so the programs
			// are gone when the daemon has exited.
			errs = append(errs, ignoreUnsupported(l.Detach()))
		}
		errs = append(errs, l.Close())
	}
	if a.legacy != nil && !a.pinned {
		errs = append(errs, a.legacy.remove(a.legacyParents...))
	}
	a.links, a.legacy = nil, nil
	return wrapDetach(a.Interface, errors.Join(errs...))
}

// ignoreUnsupported drops the error of a link that cannot be detached
// explicitly: closing it detaches it.
func ignoreUnsupported(err error) error {
	if errors.Is(err, ebpf.ErrNotSupported) {
		return nil
	}
	return err
}

// Detach removes the programs from the interface, pinned or not.
func (a *Attachment) Detach() error {
	var errs []error
	for _, l := range a.links {
		if a.pinned {
			errs = append(errs, l.Unpin())
		}
		errs = append(errs, l.Close())
	}
	if a.legacy != nil {
		errs = append(errs, a.legacy.remove(legacyParents...))
	}
	a.links, a.legacy = nil, nil
	return wrapDetach(a.Interface, errors.Join(errs...))
}

func wrapDetach(iface string, err error) error {
	if err != nil {
		return fmt.Errorf("detach from %s: %w", iface, err)
	}
	return nil
}
