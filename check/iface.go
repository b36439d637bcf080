package check

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/config"
)

const interfaceFix = "`ip -br link` lists the interfaces; set INTERFACE (or -interface) to the ones Sia traffic uses"

// interfaces returns the interfaces to check, those configured or else the
// default route's as the daemon picks it, and a line saying which.
func (c *Checker) interfaces(names []string) ([]string, result) {
	if len(names) > 0 {
		return names, result{name: "interfaces", detail: strings.Join(names, ", ") + " (INTERFACE)"}
	}
	name, err := config.DefaultRouteInterface(c.procPath("net"))
	if err != nil {
		return nil, result{name: "interfaces", status: fail, detail: err.Error(), fix: interfaceFix}
	}
	return []string{name}, result{name: "interfaces", detail: "INTERFACE is unset; using the default route's interface, " + name}
}

// iface checks one interface: that it exists and is up, who holds XDP
// there, and which XDP mode the daemon would get. The lookups use the
// calling thread's network namespace.
func (c *Checker) iface(name string, mode bpfgo.XDPMode) []result {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		// The OpError around it only adds "route ip+net".
		if opErr := (*net.OpError)(nil); errors.As(err, &opErr) {
			err = opErr.Err
		}
		return []result{{name: "interface " + name, status: fail, detail: err.Error(), fix: interfaceFix}}
	}
	progs, err := attachedXDP(ifc.Index)
	attached := xdpAttached(name, progs, err)

	// Features decide only between native and what else the mode has.
	var features uint64
	var featuresErr error
	if mode != bpfgo.XDPGeneric {
		features, featuresErr = xdpFeatures(ifc.Index)
	}
	return []result{c.link(ifc), attached, xdpMode(name, mode, ifc.MTU, features, featuresErr)}
}

// link reports the interface's state, MTU and driver.
func (c *Checker) link(ifc *net.Interface) result {
	up := ifc.Flags&net.FlagUp != 0
	state := "up"
	if !up {
		state = "down"
	}
	r := result{name: "interface " + ifc.Name, detail: fmt.Sprintf("%s, MTU %d, driver %s", state, ifc.MTU, c.driver(ifc.Name))}
	if !up {
		// Attaching works, but nothing passes to count.
		r.status = warn
		r.fix = fmt.Sprintf("nothing is counted while it is down: ip link set dev %s up", ifc.Name)
	}
	return r
}

// driver names the interface's driver from sysfs, or "virtual" for a
// device no driver binds (lo, veth, bridge, bond, VLAN).
func (c *Checker) driver(name string) string {
	target, err := os.Readlink(c.sysPath(filepath.Join("class/net", name, "device/driver")))
	if err != nil {
		return "virtual"
	}
	return filepath.Base(target)
}

// ourXDP are the kernel's names for collector's XDP programs: the C
// function names, which fit in the 15 characters a program name keeps.
var ourXDP = []string{bpf.CollectorProgXdpCount, bpf.CollectorProgXdpCountFrags}

// status says whether p stands in collector's way: one of ours is fine
// (a running daemon or pinned links), another tool's blocks the attach,
// one without a name cannot be told apart.
func (p xdpProg) status() status {
	switch {
	case slices.Contains(ourXDP, p.name):
		return ok
	case p.name == "":
		return warn
	}
	return fail
}

// xdpAttached judges the XDP programs attached to an interface (err is
// from reading them), describing the one most in the way.
func xdpAttached(iface string, progs []xdpProg, err error) result {
	r := result{name: iface + " xdp"}
	if err != nil {
		r.status, r.detail = warn, fmt.Sprintf("cannot read the XDP programs attached: %v", err)
		r.fix = "run collector check as root"
		return r
	}
	if len(progs) == 0 {
		r.detail = "no XDP program attached"
		return r
	}
	p := progs[0]
	for _, q := range progs[1:] {
		if q.status() > p.status() {
			p = q
		}
	}
	r.status = p.status()
	switch r.status {
	case ok:
		r.detail = fmt.Sprintf("ours (%s, id %d, %s) is attached: a running collector or pinned links", p.name, p.id, p.mode)
	case warn:
		r.detail = fmt.Sprintf("an XDP program (id %d, %s) is attached to %s; naming it needs CAP_SYS_ADMIN", p.id, p.mode, iface)
		r.fix = "run collector check as root to see whose it is: collector cannot attach where another tool's program is"
	default:
		r.detail = fmt.Sprintf("another XDP program (%s, id %d) is attached to %s; collector cannot attach there", p.name, p.id, iface)
		r.fix = fmt.Sprintf("stop the tool that attached it (`bpftool prog show id %d` names it), or watch another interface", p.id)
	}
	return r
}

// xdpMode reports the XDP mode the daemon would get on an interface from
// the setting and the driver's XDP features (err is from reading them).
// Nothing is attached to find out: a native attach resets some NICs.
func xdpMode(iface string, mode bpfgo.XDPMode, mtu int, features uint64, err error) result {
	r := result{name: iface + " xdp mode"}
	switch mode {
	case bpfgo.XDPGeneric:
		r.detail = "generic (XDP_MODE=generic; GRO is off on the interface while it runs, XDP_MODE=tc or auto keeps it)"
		return r
	case bpfgo.XDPViaTC:
		r.detail = "none: a TC ingress program counts (XDP_MODE=tc)"
		return r
	case bpfgo.XDPNative, bpfgo.XDPAuto, "":
	default:
		r.status, r.detail, r.fix = fail, fmt.Sprintf("XDP_MODE=%s is not a mode", mode), "set XDP_MODE to auto, native, generic or tc"
		return r
	}
	native := features&netdevXDPActBasic != 0
	// Above this MTU the daemon loads the multi-buffer program, which a
	// driver without multi-buffer XDP may refuse in native mode.
	jumbo := ""
	if native && mtu > bpfgo.JumboMTU && features&netdevXDPActRxSG == 0 {
		jumbo = fmt.Sprintf("; at MTU %d it may refuse native mode, reporting no multi-buffer XDP", mtu)
	}
	switch {
	case mode == bpfgo.XDPNative && err != nil:
		r.detail = fmt.Sprintf("native (XDP_MODE=native); the start fails if the driver has none (%v)", err)
	case mode == bpfgo.XDPNative && !native:
		r.status, r.detail = fail, fmt.Sprintf("XDP_MODE=native, but the driver of %s has no native XDP", iface)
		r.fix = "set XDP_MODE=auto or tc"
	case mode == bpfgo.XDPNative:
		r.detail = "native (XDP_MODE=native)" + jumbo
		if jumbo != "" {
			r.status, r.fix = warn, "set XDP_MODE=auto to count with a TC ingress program if it does"
		}
	case err != nil:
		r.detail = fmt.Sprintf("native if the driver supports it, else none: a TC ingress program counts (XDP_MODE=auto; %v)", err)
	case native && jumbo != "":
		r.detail = "native (XDP_MODE=auto; the driver has native XDP)" + jumbo + ": a TC ingress program counts then"
	case native:
		r.detail = "native (XDP_MODE=auto; the driver has native XDP)"
	default:
		r.detail = "none: a TC ingress program counts (XDP_MODE=auto; the driver has no native XDP, and generic XDP would turn GRO off)"
	}
	return r
}
