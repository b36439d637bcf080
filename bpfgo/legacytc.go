package bpfgo

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernels before 6.6 have no TCX: there the egress program is a cls_bpf
// filter in direct-action mode under a clsact qdisc. Filters are not links:
// they outlive the process that added them, so ours has a fixed handle and
// priority, and a new start replaces it in one atomic netlink request.
const (
	legacyHandle = 0xc011
	// Priority 1 puts our filter first, so a filter that ends the
	// classification (TC_ACT_OK, SHOT) cannot hide packets from it; ours
	// always returns TC_ACT_UNSPEC and the next filter runs.
	legacyPriority = 1
)

// legacyFilter is our cls_bpf filter on one interface's egress.
type legacyFilter struct {
	iface netlink.Link
	// createdQdisc is set when the clsact qdisc was added by us: only then
	// may it be deleted, since other tools' filters hang off it too.
	// With pinning it is remembered across restarts by a marker
	// directory, as bpffs holds no plain files.
	createdQdisc bool
	marker       string
}

func ourFilter(ifindex int) *netlink.BpfFilter {
	return &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_EGRESS,
			Handle:    legacyHandle,
			Priority:  legacyPriority,
			Protocol:  unix.ETH_P_ALL,
		},
		Name:         "tc_count",
		DirectAction: true,
	}
}

// newLegacyFilter describes our filter slot on ifindex. marker is the
// pinned marker directory, or "" without pinning.
func newLegacyFilter(ifindex int, marker string) (*legacyFilter, error) {
	iface, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("find interface %d: %w", ifindex, err)
	}
	f := &legacyFilter{iface: iface, marker: marker}
	if marker != "" {
		_, err := os.Stat(marker)
		f.createdQdisc = err == nil
	}
	return f, nil
}

// attachLegacyTC adds (or replaces) our filter on ifindex's egress, adding
// a clsact qdisc first when there is none.
func attachLegacyTC(ifindex int, prog *ebpf.Program, marker string) (*legacyFilter, error) {
	f, err := newLegacyFilter(ifindex, marker)
	if err != nil {
		return nil, err
	}
	has, err := hasClsact(f.iface)
	if err != nil {
		return nil, err
	}
	if !has {
		if err := netlink.QdiscAdd(clsact(ifindex)); err != nil {
			return nil, fmt.Errorf("add clsact qdisc: %w", err)
		}
		f.createdQdisc = true
		if marker != "" {
			if err := os.MkdirAll(marker, 0o700); err != nil {
				f.remove()
				return nil, fmt.Errorf("remember the clsact qdisc is ours: %w", err)
			}
		}
	}
	filter := ourFilter(ifindex)
	filter.Fd = prog.FD()
	if err := netlink.FilterReplace(filter); err != nil {
		if f.createdQdisc {
			f.remove()
		}
		return nil, fmt.Errorf("add cls_bpf filter: %w", err)
	}
	return f, nil
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

// remove deletes our filter, if there, and the clsact qdisc when we added
// it and no other filter is left on it.
func (f *legacyFilter) remove() error {
	idx := f.iface.Attrs().Index
	has, err := hasClsact(f.iface)
	if err != nil || !has {
		f.forget()
		return err
	}
	if err := netlink.FilterDel(ourFilter(idx)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete cls_bpf filter: %w", err)
	}
	if !f.createdQdisc {
		return nil
	}
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		others, err := netlink.FilterList(f.iface, parent)
		if err != nil {
			return fmt.Errorf("list filters: %w", err)
		}
		if len(others) > 0 {
			return nil // someone else uses the qdisc now: keep it
		}
	}
	if err := netlink.QdiscDel(clsact(idx)); err != nil {
		return fmt.Errorf("delete clsact qdisc: %w", err)
	}
	f.forget()
	return nil
}

// forget drops the record that the qdisc was ours: it is gone.
func (f *legacyFilter) forget() {
	f.createdQdisc = false
	if f.marker != "" {
		os.Remove(f.marker)
	}
}
