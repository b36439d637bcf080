package bpfgo

import (
	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/traffic"
)

// lastClients is the content of the caches of the last client (struct
// client_cache in bpf/types.h): per-CPU arrays with an entry for each
// direction, holding what that CPU's last client in that direction sent
// since it came into the cache. The datapath adds it to the client's
// entry in the maps when another client takes the cache's place; what a
// cache still holds when it leaves the slot is read here, like a map.
type lastClients struct {
	// counters and proven are the contents of the maps swapped with the
	// caches, read before them: placing what the caches held needs to
	// know their clients.
	counters, proven *clientMaps
	stats            *counterStats
}

func (lc *lastClients) prepare(*ebpf.Map, string) error { return nil }

// read appends what the caches in m held, each client where the datapath
// would have counted it (see place), and counts the caches' hits and
// misses.
func (lc *lastClients) read(m *ebpf.Map, held []traffic.Sample) ([]traffic.Sample, error) {
	caches, err := readCaches(m)
	if err != nil {
		return held, err
	}
	var hits, misses uint64
	for _, c := range caches {
		hits += c.cache.Hits
		misses += c.cache.Misses
	}
	lc.stats.cached(hits, misses)
	return append(held, lc.place(caches)...), nil
}

// clear zeroes every CPU's caches.
func (lc *lastClients) clear(m *ebpf.Map) error {
	empty := make([]bpf.CollectorClientCache, ebpf.MustPossibleCPU())
	for dir := range traffic.NumDirections {
		if err := m.Update(uint32(dir), empty, ebpf.UpdateAny); err != nil {
			return err
		}
	}
	return nil
}

// peek appends what the live caches in m hold, each under its client's
// address: values may be mid-update, as everywhere in Peek.
func (lc *lastClients) peek(m *ebpf.Map, out []traffic.Sample) ([]traffic.Sample, error) {
	caches, err := readCaches(m)
	if err != nil {
		return nil, err
	}
	for _, c := range caches {
		s := c.sample()
		s.Client = clientOf(c.cache.Key)
		if !s.Traffic.IsZero() {
			out = append(out, s)
		}
	}
	return out, nil
}

// place returns what the caches held as Samples. A client with an entry in
// the maps of the same period counts under its address; so does a client
// without one while the counter map had room for it, or, proven, the
// proven map had: the datapath would have given it an entry had it
// flushed the cache then. The rest counts in the overflow entry, so a
// full map is full for caches too.
func (lc *lastClients) place(caches []cpuCache) []traffic.Sample {
	counterRoom, provenRoom := lc.counters.room(), lc.proven.room()
	var inMaps map[bpf.CollectorClientKey]bool
	if counterRoom < len(caches) {
		// Room may run out before every cached client has a place:
		// only then does it matter which have entries already.
		inMaps = map[bpf.CollectorClientKey]bool{}
		for _, keys := range [][]bpf.CollectorClientKey{lc.counters.keys, lc.proven.keys} {
			for _, k := range keys {
				inMaps[k] = true
			}
		}
	}
	placed := map[bpf.CollectorClientKey]bool{}
	out := make([]traffic.Sample, 0, len(caches))
	for _, c := range caches {
		s := c.sample()
		if s.Traffic.IsZero() {
			continue
		}
		key, proven := c.cache.Key, c.cache.Flags&flagProven != 0
		own := key != overflowKey
		switch {
		case !own, inMaps == nil, inMaps[key], placed[key]:
		case counterRoom > 0:
			counterRoom--
		case proven && provenRoom > 0:
			provenRoom--
		default:
			own = false
		}
		s.Client = traffic.Other
		if own {
			placed[key] = true
			s.Client, s.Proven = clientOf(key), proven
		}
		out = append(out, s)
	}
	return out
}

// cpuCache is one CPU's cache of one direction.
type cpuCache struct {
	dir   traffic.Direction
	cache bpf.CollectorClientCache
}

// sample is what the cache holds, without its client.
func (c cpuCache) sample() traffic.Sample {
	var s traffic.Sample
	for class, t := range c.cache.T {
		s.Traffic[class][c.dir] = traffic.Tally{Bytes: t.Bytes, Packets: t.Packets}
	}
	return s
}

// readCaches returns the caches in m that hold something.
func readCaches(m *ebpf.Map) ([]cpuCache, error) {
	var out []cpuCache
	for dir := range traffic.NumDirections {
		var perCPU []bpf.CollectorClientCache
		if err := m.Lookup(uint32(dir), &perCPU); err != nil {
			return nil, err
		}
		for _, c := range perCPU {
			if c.Hits+c.Misses > 0 {
				out = append(out, cpuCache{dir: traffic.Direction(dir), cache: c})
			}
		}
	}
	return out, nil
}
