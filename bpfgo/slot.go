package bpfgo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/traffic"
)

// slotted is a one-slot ARRAY_OF_MAPS and the two maps that take turns
// in it: the datapath counts in the map in the slot, Drain reads the
// other. The counter maps, the proven maps and the caches of the last
// client are each one.
type slotted struct {
	slot *ebpf.Map
	// names are the maps' names, and their pin names with pinning.
	names [2]string
	// content knows what the maps hold: how to ready, read and empty one.
	content slotContent

	maps   [2]*ebpf.Map // maps[active] is in the slot
	active int
	spare  spareState
}

// slotContent is what the maps of a slot hold.
type slotContent interface {
	// prepare readies a map before it may go into the slot.
	prepare(m *ebpf.Map, name string) error
	// read appends what the spare m counted to held, and keeps what
	// clear needs to empty it.
	read(m *ebpf.Map, held []traffic.Sample) ([]traffic.Sample, error)
	// clear empties m, read before.
	clear(m *ebpf.Map) error
	// peek appends what the live m counted so far (see Peek).
	peek(m *ebpf.Map, out []traffic.Sample) ([]traffic.Sample, error)
}

// spareState tracks the map out of the slot. Only an empty map may go in.
type spareState int

const (
	spareUnread spareState = iota // may hold counts nobody has read
	spareStale                    // read, not yet cleared
	spareClean                    // empty (a counter map but for a zero overflow entry)
)

// open creates (or, pinned, reopens) both maps from inner and makes sure
// one of them is in the slot.
func (s *slotted) open(c *Counters, inner *ebpf.MapSpec) error {
	for i, name := range s.names {
		spec := inner.Copy()
		spec.Name = name
		var opts ebpf.MapOptions
		if c.pinPath != "" {
			spec.Pinning = ebpf.PinByName
			opts.PinPath = c.pinPath
		}
		err := c.replaceIncompatible(name, func() (err error) {
			s.maps[i], err = ebpf.NewMapWithOptions(spec, opts)
			return err
		})
		if err != nil {
			return fmt.Errorf("create map %s: %w", name, err)
		}
		if err := s.content.prepare(s.maps[i], name); err != nil {
			return err
		}
	}

	active, err := s.inSlot(c)
	if err != nil {
		return err
	}
	if active < 0 {
		if err := s.slot.Update(uint32(0), s.maps[0], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("put %s in its slot: %w", s.names[0], err)
		}
		active = 0
	}
	s.active = active
	// A pinned spare may hold counts of a daemon stopped mid-drain.
	s.spare = spareUnread
	return nil
}

// inSlot returns the index of the map in the slot, or -1 when the slot is
// empty or holds a map we did not open (its counts cannot be read without
// CAP_SYS_ADMIN, which turns map IDs into descriptors).
func (s *slotted) inSlot(c *Counters) (int, error) {
	var id uint32
	err := s.slot.Lookup(uint32(0), &id)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("read the slot of %s: %w", s.names[0], err)
	}
	for i, m := range s.maps {
		info, err := m.Info()
		if err != nil {
			return -1, fmt.Errorf("read map info: %w", err)
		}
		if mid, ok := info.ID(); ok && uint32(mid) == id {
			return i, nil
		}
	}
	c.log.Warn("the map in a pinned slot is not one of ours; replacing it, its counts are lost", "map", s.names[0], "map_id", id)
	return -1, nil
}

// swap puts the spare, which must be empty, into the slot. The update
// returns only once no program can still be adding to the map it
// replaces (the kernel waits for an RCU grace period).
func (s *slotted) swap() error {
	spare := 1 - s.active
	if err := s.slot.Update(uint32(0), s.maps[spare], ebpf.UpdateAny); err != nil {
		return fmt.Errorf("swap %s: %w", s.names[0], err)
	}
	s.active, s.spare = spare, spareUnread
	return nil
}

// readSpare appends what the map out of the slot counted to held, unless
// that was done already.
func (s *slotted) readSpare(held []traffic.Sample) ([]traffic.Sample, error) {
	if s.spare != spareUnread {
		return held, nil
	}
	held, err := s.content.read(s.maps[1-s.active], held)
	if err != nil {
		return held, fmt.Errorf("read %s: %w", s.names[0], err)
	}
	s.spare = spareStale
	return held, nil
}

// clearSpare empties the map out of the slot once it was read.
func (s *slotted) clearSpare() error {
	if s.spare != spareStale {
		return nil
	}
	if err := s.content.clear(s.maps[1-s.active]); err != nil {
		return fmt.Errorf("clear %s: %w", s.names[0], err)
	}
	s.spare = spareClean
	return nil
}

// peek appends what the map in the slot counted so far (see Peek).
func (s *slotted) peek(out []traffic.Sample) ([]traffic.Sample, error) {
	out, err := s.content.peek(s.maps[s.active], out)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.names[0], err)
	}
	return out, nil
}

func (s *slotted) close() error {
	var errs []error
	for _, m := range s.maps {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// dropStaleSlot sets aside the pinned maps of s and removes its pinned
// slot when a pinned map of s has another layout than inner. The verifier checks the programs against the
// layout the slot was made for, and the slot takes no map of another; the
// kernel does not tell that layout, the pinned maps do.
func (s *slotted) dropStaleSlot(c *Counters, slotName string, inner *ebpf.MapSpec) error {
	for _, name := range s.names {
		m, err := ebpf.LoadPinnedMap(filepath.Join(c.pinPath, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("open pinned map %s: %w", name, err)
		}
		incompatible := inner.Compatible(m)
		m.Close()
		if incompatible == nil {
			continue
		}
		// Both maps of the slot are of its layout: they go aside
		// together, to be carried over (see DrainCarried).
		for _, name := range s.names {
			err := c.setAside(filepath.Join(c.pinPath, name))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		path := filepath.Join(c.pinPath, slotName)
		c.log.Info("replacing pinned slot made for another map layout", "pin", path, "reason", incompatible)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove pinned slot of another layout: %w", err)
		}
		return nil
	}
	return nil
}
