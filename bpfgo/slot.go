package bpfgo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/traffic"
)

// slotted is a one-slot ARRAY_OF_MAPS and the two hash maps that take
// turns in it: the datapath counts in the map in the slot, Drain reads the
// other. The counter maps and the proven maps are each one.
type slotted struct {
	slot *ebpf.Map
	// names are the maps' names, and their pin names with pinning.
	names [2]string
	// overflow says the maps keep an overflow entry (the address ::),
	// which is zeroed rather than deleted when a map is cleared.
	overflow bool

	maps   [2]*ebpf.Map // maps[active] is in the slot
	active int
	spare  spareState
	// staleKeys are the keys of the spare, read but not yet cleared.
	staleKeys []bpf.CollectorClientKey
}

// spareState tracks the map out of the slot. Only an empty map may go in.
type spareState int

const (
	spareUnread spareState = iota // may hold counts nobody has read
	spareStale                    // read, not yet cleared
	spareClean                    // empty but for a zero overflow entry
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
		if !s.overflow {
			continue
		}
		// Every counter map keeps an overflow entry so a full map
		// still has somewhere to count. A pinned map in the slot is
		// live: only a lookup, which takes no bucket lock, may touch
		// it (see Peek).
		var overflow bpf.CollectorClientTraffic
		err = s.maps[i].Lookup(overflowKey, &overflow)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			err = s.maps[i].Update(overflowKey, bpf.CollectorClientTraffic{}, ebpf.UpdateNoExist)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("add overflow entry to %s: %w", name, err)
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

// settle empties the map out of the slot, appending any counts in it that
// were never returned to held, and returns held.
func (s *slotted) settle(held []traffic.Sample, stats *counterStats) ([]traffic.Sample, error) {
	m := s.maps[1-s.active]
	if s.spare == spareUnread {
		keys, values, err := readMap(m)
		if err != nil {
			return held, fmt.Errorf("read %s: %w", s.names[0], err)
		}
		if stats != nil {
			stats.read(keys)
		}
		held = appendSamples(held, keys, values)
		s.staleKeys, s.spare = keys, spareStale
	}
	if s.spare == spareStale {
		if err := s.clear(m); err != nil {
			return held, fmt.Errorf("clear %s: %w", s.names[0], err)
		}
		s.staleKeys, s.spare = nil, spareClean
	}
	return held, nil
}

// clear deletes every client read from m but the overflow entry, which
// it zeroes.
func (s *slotted) clear(m *ebpf.Map) error {
	clients := make([]bpf.CollectorClientKey, 0, len(s.staleKeys))
	for _, k := range s.staleKeys {
		if k != overflowKey {
			clients = append(clients, k)
		}
	}
	if len(clients) > 0 {
		if _, err := m.BatchDelete(clients, nil); err != nil {
			return err
		}
	}
	if !s.overflow {
		return nil
	}
	return m.Update(overflowKey, bpf.CollectorClientTraffic{}, ebpf.UpdateAny)
}

// peek reads the map in the slot an entry at a time (see Peek).
func (s *slotted) peek(out []traffic.Sample) ([]traffic.Sample, error) {
	var (
		key   bpf.CollectorClientKey
		value bpf.CollectorClientTraffic
	)
	it := s.maps[s.active].Iterate()
	for it.Next(&key, &value) {
		out = appendSamples(out, []bpf.CollectorClientKey{key}, []bpf.CollectorClientTraffic{value})
	}
	if err := it.Err(); err != nil {
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
