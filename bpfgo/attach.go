package bpfgo

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// XDPMode is how the ingress program is attached.
type XDPMode string

// XDP modes: native runs in the driver, generic in the kernel's network
// stack (every driver, slower); auto tries native first.
const (
	XDPAuto    XDPMode = "auto"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
)

// TCMode is how the egress program is attached.
type TCMode string

// TC modes: tcx is the kernel's link-based TC (6.6+); auto picks it.
const (
	TCAuto TCMode = "auto"
	TCX    TCMode = "tcx"
)

// Attachment is the datapath attached to one interface.
type Attachment struct {
	Interface string
	XDPMode   XDPMode // the mode in use: native or generic
	TCMode    TCMode  // the mode in use: tcx
	links     []link.Link
}

// Attach attaches the ingress and egress programs to iface. On failure
// nothing stays attached and the error names the interface, the mode and
// the kernel's reason.
func (c *Counters) Attach(iface string, xdpMode XDPMode, tcMode TCMode) (*Attachment, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w (ip -br link lists the interfaces)", iface, err)
	}
	a := &Attachment{Interface: iface}

	xdpLink, mode, err := c.attachXDP(ifc, xdpMode)
	if err != nil {
		return nil, err
	}
	a.links = append(a.links, xdpLink)
	a.XDPMode = mode

	tcLink, err := c.attachTC(ifc, tcMode)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.links = append(a.links, tcLink)
	a.TCMode = TCX
	return a, nil
}

// jumboMTU is the MTU above which a frame may span several buffers. Below
// it the single-buffer program is used: it saves a helper call per packet.
const jumboMTU = 1500

func (c *Counters) attachXDP(ifc *net.Interface, mode XDPMode) (link.Link, XDPMode, error) {
	prog := c.xdp
	if ifc.MTU > jumboMTU && c.xdpFrag != nil {
		prog = c.xdpFrag
	}
	try := func(m XDPMode) (link.Link, error) {
		flags := link.XDPDriverMode
		if m == XDPGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: flags})
		if err != nil {
			return nil, fmt.Errorf("attach xdp %s on %s: %w%s", m, ifc.Name, err, xdpHint(err))
		}
		return l, nil
	}
	switch mode {
	case XDPNative, XDPGeneric:
		l, err := try(mode)
		return l, mode, err
	case XDPAuto, "":
		l, err := try(XDPNative)
		if err == nil {
			return l, XDPNative, nil
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, "", err
		}
		c.log.Info("native xdp unavailable, using generic mode", "interface", ifc.Name, "reason", err)
		l, err = try(XDPGeneric)
		return l, XDPGeneric, err
	}
	return nil, "", fmt.Errorf("xdp mode %q: accepted are auto, native, generic", mode)
}

func xdpHint(err error) string {
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		return " (another XDP program is attached there; `ip link show` names it)"
	}
	if errors.Is(err, unix.EPERM) {
		return " (needs root or CAP_BPF and CAP_NET_ADMIN)"
	}
	return ""
}

func (c *Counters) attachTC(ifc *net.Interface, mode TCMode) (link.Link, error) {
	if mode != TCAuto && mode != TCX && mode != "" {
		return nil, fmt.Errorf("tc mode %q: accepted are auto, tcx", mode)
	}
	// Appending at the tail keeps programs attached before ours first in
	// line; ours passes every packet on to the next.
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifc.Index,
		Program:   c.tc,
		Attach:    ebpf.AttachTCXEgress,
		Anchor:    link.Tail(),
	})
	if err != nil {
		hint := ""
		if errors.Is(err, ebpf.ErrNotSupported) {
			hint = " (this kernel has no TCX; it needs 6.6 or newer)"
		}
		return nil, fmt.Errorf("attach tcx egress on %s: %w%s", ifc.Name, err, hint)
	}
	return l, nil
}

// Close detaches the programs from the interface.
func (a *Attachment) Close() error {
	var errs []error
	for i := len(a.links) - 1; i >= 0; i-- {
		if err := a.links[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach from %s: %w", a.Interface, err))
		}
	}
	a.links = nil
	return errors.Join(errs...)
}
