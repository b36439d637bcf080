package check

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The queries below open their netlink socket on the calling thread, so
// they see the network namespace the caller is in (tests run them in a
// namespace of their own).

// xdpProg is an XDP program attached to an interface.
type xdpProg struct {
	id   ebpf.ProgramID
	mode string // native, generic or offload
	// name is the kernel's name of the program; empty when it cannot be
	// read, as turning an ID into a descriptor needs CAP_SYS_ADMIN.
	name string
}

// xdpModeAttrs are the attributes of IFLA_XDP that carry the ID of the
// program attached in each mode; the kernel sends one for every mode in
// use, where IFLA_XDP_PROG_ID is absent once two modes are.
var xdpModeAttrs = map[uint16]string{
	unix.IFLA_XDP_SKB_PROG_ID: "generic",
	unix.IFLA_XDP_DRV_PROG_ID: "native",
	unix.IFLA_XDP_HW_PROG_ID:  "offload",
}

// attachedXDP returns the XDP programs attached to the interface, read
// from its rtnetlink link attributes.
func attachedXDP(ifindex int) ([]xdpProg, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, fmt.Errorf("read link %d: %w", ifindex, err)
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return nil, fmt.Errorf("read link %d: %d replies, want 1", ifindex, len(msgs))
	}
	attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofIfInfomsg:])
	if err != nil {
		return nil, fmt.Errorf("read link %d: %w", ifindex, err)
	}
	var progs []xdpProg
	for _, a := range attrs {
		if a.Attr.Type&nl.NLA_TYPE_MASK != unix.IFLA_XDP {
			continue
		}
		nested, err := nl.ParseRouteAttr(a.Value)
		if err != nil {
			return nil, fmt.Errorf("read link %d: IFLA_XDP: %w", ifindex, err)
		}
		for _, n := range nested {
			mode, found := xdpModeAttrs[n.Attr.Type]
			if !found || len(n.Value) < 4 {
				continue
			}
			p := xdpProg{id: ebpf.ProgramID(binary.NativeEndian.Uint32(n.Value)), mode: mode}
			p.name = programName(p.id)
			progs = append(progs, p)
		}
	}
	return progs, nil
}

// programName returns the kernel's name of a program, or "" when it
// cannot be read.
func programName(id ebpf.ProgramID) string {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return ""
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return ""
	}
	return info.Name
}

// The netdev generic netlink family (include/uapi/linux/netdev.h, 6.3+)
// reports the XDP features of every device; golang.org/x/sys/unix does not
// define it yet.
const (
	netdevCmdDevGet       = 1  // NETDEV_CMD_DEV_GET
	netdevADevIfindex     = 1  // NETDEV_A_DEV_IFINDEX
	netdevADevXDPFeatures = 3  // NETDEV_A_DEV_XDP_FEATURES, a u64 of NETDEV_XDP_ACT_*
	netdevXDPActBasic     = 1  // NETDEV_XDP_ACT_BASIC: native XDP
	netdevXDPActRxSG      = 32 // NETDEV_XDP_ACT_RX_SG: multi-buffer (jumbo) frames
)

// errNoXDPFeatures says the kernel does not report XDP features (before
// 6.3), so whether a driver has native XDP is known only by trying.
var errNoXDPFeatures = errors.New("the kernel does not report XDP features (6.3+)")

// xdpFeatures returns the NETDEV_XDP_ACT_* bits of the interface.
func xdpFeatures(ifindex int) (uint64, error) {
	family, err := netlink.GenlFamilyGet("netdev")
	if errors.Is(err, unix.ENOENT) {
		return 0, errNoXDPFeatures
	}
	if err != nil {
		return 0, fmt.Errorf("find the netdev netlink family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(family.ID), 0)
	req.AddData(genlHeader{cmd: netdevCmdDevGet, version: uint8(family.Version)})
	req.AddData(nl.NewRtAttr(netdevADevIfindex, nl.Uint32Attr(uint32(ifindex))))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return 0, fmt.Errorf("netdev dev-get %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return 0, fmt.Errorf("netdev dev-get %d: %w", ifindex, err)
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevADevXDPFeatures && len(a.Value) == 8 {
				return binary.NativeEndian.Uint64(a.Value), nil
			}
		}
	}
	return 0, errNoXDPFeatures
}

// genlHeader is struct genlmsghdr. nl.Genlmsg sends two bytes from beyond
// its end as the reserved field, which families that validate strictly,
// netdev among them, reject with EINVAL.
type genlHeader struct{ cmd, version uint8 }

func (h genlHeader) Len() int          { return nl.SizeofGenlmsg }
func (h genlHeader) Serialize() []byte { return []byte{h.cmd, h.version, 0, 0} }
