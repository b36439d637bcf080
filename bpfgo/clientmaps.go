package bpfgo

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/traffic"
)

// clientMaps is the content of the counter maps and of the proven maps:
// hash maps of client addresses to their traffic.
type clientMaps struct {
	// capacity is how many clients a map holds, the overflow entry not
	// counted.
	capacity int
	// overflow says the maps keep an overflow entry (the address ::),
	// which is zeroed rather than deleted when a map is cleared.
	overflow bool
	// stats, when set, learns how full each map read was.
	stats *counterStats
	// keys are those of the spare, read but not yet cleared.
	keys []bpf.CollectorClientKey
}

// prepare gives every counter map its overflow entry, so a full map
// still has somewhere to count. A pinned map in the slot is live: only a
// lookup, which takes no bucket lock, may touch it (see Peek).
func (cm *clientMaps) prepare(m *ebpf.Map, name string) error {
	if !cm.overflow {
		return nil
	}
	var overflow bpf.CollectorClientTraffic
	err := m.Lookup(overflowKey, &overflow)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = m.Update(overflowKey, bpf.CollectorClientTraffic{}, ebpf.UpdateNoExist)
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("add overflow entry to %s: %w", name, err)
	}
	return nil
}

func (cm *clientMaps) read(m *ebpf.Map, held []traffic.Sample) ([]traffic.Sample, error) {
	keys, values, err := readMap(m)
	if err != nil {
		return held, err
	}
	if cm.stats != nil {
		cm.stats.read(keys)
	}
	cm.keys = keys
	return appendSamples(held, keys, values), nil
}

// clear deletes every client read from m but the overflow entry, which
// it zeroes.
func (cm *clientMaps) clear(m *ebpf.Map) error {
	clients := make([]bpf.CollectorClientKey, 0, len(cm.keys))
	for _, k := range cm.keys {
		if k != overflowKey {
			clients = append(clients, k)
		}
	}
	if len(clients) > 0 {
		if _, err := m.BatchDelete(clients, nil); err != nil {
			return err
		}
	}
	cm.keys = nil
	if !cm.overflow {
		return nil
	}
	return m.Update(overflowKey, bpf.CollectorClientTraffic{}, ebpf.UpdateAny)
}

// peek reads m an entry at a time (see Peek).
func (cm *clientMaps) peek(m *ebpf.Map, out []traffic.Sample) ([]traffic.Sample, error) {
	var (
		key   bpf.CollectorClientKey
		value bpf.CollectorClientTraffic
	)
	it := m.Iterate()
	for it.Next(&key, &value) {
		out = appendSamples(out, []bpf.CollectorClientKey{key}, []bpf.CollectorClientTraffic{value})
	}
	return out, it.Err()
}

// room returns how many more clients the map last read had room for.
func (cm *clientMaps) room() int {
	used := len(cm.keys)
	if cm.overflow {
		used--
	}
	return max(cm.capacity-used, 0)
}
