package bpfgo

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernels before 6.6 have no TCX: there the TC programs are cls_bpf
// filters in direct-action mode under a clsact qdisc. Filters are not
// links: they outlive the process that added them, so ours have a fixed
// handle and priority, and a new start replaces them in one atomic netlink
// request each.
const (
	legacyHandle = 0xc011
	// Priority 1 puts our filter first, so a filter that ends the
	// classification (TC_ACT_OK, SHOT) cannot hide packets from it; ours
	// always returns TC_ACT_UNSPEC and the next filter runs.
	legacyPriority = 1
)

// The hooks of a clsact qdisc our filters can sit on.
var legacyParents = []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS}

// legacyTC is our cls_bpf filters on one interface.
type legacyTC struct {
	iface netlink.Link
	// createdQdisc is set when the clsact qdisc was added by us: only then
	// may it be deleted, since other tools' filters hang off it too.
	// With pinning it is remembered across restarts by a marker
	// directory, as bpffs holds no plain files.
	createdQdisc bool
	marker       string
}

func ourFilter(ifindex int, parent uint32) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    parent,
			Handle:    legacyHandle,
			Priority:  legacyPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		DirectAction: true,
	}
}

// newLegacyTC describes our filter slots on ifindex. marker is the pinned
// marker directory, or "" without pinning.
func newLegacyTC(ifindex int, marker string) (*legacyTC, error) {
	iface, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("find interface %d: %w", ifindex, err)
	}
	f := &legacyTC{iface: iface, marker: marker}
	if marker != "" {
		_, err := os.Stat(marker)
		f.createdQdisc = err == nil
	}
	return f, nil
}

// add adds (or replaces) our filter running prog on parent, adding a
// clsact qdisc first when there is none.
func (f *legacyTC) add(parent uint32, prog *ebpf.Program) error {
	idx := f.iface.Attrs().Index
	has, err := hasClsact(f.iface)
	if err != nil {
		return err
	}
	if !has {
		if err := netlink.QdiscAdd(clsact(idx)); err != nil {
			return fmt.Errorf("add clsact qdisc: %w", err)
		}
		f.createdQdisc = true
		if f.marker != "" {
			if err := os.MkdirAll(f.marker, 0o700); err != nil {
				return fmt.Errorf("remember the clsact qdisc is ours: %w", err)
			}
		}
	}
	filter := ourFilter(idx, parent)
	filter.Fd = prog.FD()
	if info, err := prog.Info(); err == nil {
		filter.Name = info.Name
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("add cls_bpf filter: %w", err)
	}
	return nil
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

func hasClsact(iface netlink.Link) (bool, error) {
	qdiscs, err := netlink.QdiscList(iface)
	if err != nil {
		return false, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qdiscs {
		if q.Type() == "clsact" {
			return true, nil
		}
	}
	return false, nil
}

// remove deletes our filter on each of parents, if there, and the clsact
// qdisc when we added it and no filter is left on it.
func (f *legacyTC) remove(parents ...uint32) error {
	idx := f.iface.Attrs().Index
	has, err := hasClsact(f.iface)
	if err != nil || !has {
		f.forget()
		return err
	}
	for _, parent := range parents {
		if err := netlink.FilterDel(ourFilter(idx, parent)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete cls_bpf filter: %w", err)
		}
	}
	if !f.createdQdisc {
		return nil
	}
	for _, parent := range legacyParents {
		others, err := netlink.FilterList(f.iface, parent)
		if err != nil {
			return fmt.Errorf("list filters: %w", err)
		}
		if len(others) > 0 {
			return nil // a filter is left on the qdisc: keep it
		}
	}
	if err := netlink.QdiscDel(clsact(idx)); err != nil {
		return fmt.Errorf("delete clsact qdisc: %w", err)
	}
	f.forget()
	return nil
}

// forget drops the record that the qdisc was ours: it is gone.
func (f *legacyTC) forget() {
	f.createdQdisc = false
	if f.marker != "" {
		os.Remove(f.marker)
	}
}
