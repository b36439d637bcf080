package bpfgo

import (
	"sync"
	"time"

	"github.com/back2basic/collector/bpf"
)

// Stats is what the datapath's counter maps went through since Load: what
// metrics report about them.
type Stats struct {
	// Drains counts the calls to Drain, failed ones included, and
	// DrainTime sums how long they took: mostly the kernel waiting until
	// no program can still write to the map swapped out.
	Drains    uint64
	DrainTime time.Duration
	// MapEntries is how many clients the counter map read last held,
	// the seeded ones that sent nothing included: the room they took.
	// MapCapacity is how many it can hold (MaxClients); past it, new
	// clients are counted in the overflow entry, which neither number
	// counts.
	MapEntries  int
	MapCapacity int
	// CacheHits counts the packets added to a CPU's cache of its last
	// client, with no lookup in the maps; CacheMisses those that were
	// not: another client than the CPU's last in that direction, or a
	// client's first proof in the cache. Both grow at each drain.
	CacheHits   uint64
	CacheMisses uint64
}

// Stats returns what the counter maps went through so far. It does not
// wait for a running Drain.
func (c *Counters) Stats() Stats {
	return c.stats.snapshot()
}

// counterStats are the numbers Stats reports, behind a lock of their own
// rather than c.mu, which Drain holds while the kernel waits.
type counterStats struct {
	mu sync.Mutex
	s  Stats
}

// drained records a Drain that began at began.
func (s *counterStats) drained(began time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Drains++
	s.s.DrainTime += time.Since(began)
}

// read records the keys of a counter map just read.
func (s *counterStats) read(keys []bpf.CollectorClientKey) {
	n := len(keys)
	for _, k := range keys {
		if k == overflowKey {
			n--
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.MapEntries = n
}

// cached records the hits and misses of caches just read.
func (s *counterStats) cached(hits, misses uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.CacheHits += hits
	s.s.CacheMisses += misses
}

func (s *counterStats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}

// AttachMode is how the datapath is attached to one interface.
type AttachMode struct {
	Interface string
	XDP       XDPMode
	TC        TCMode
}

// InterfaceStats is what became of the interfaces counted on.
type InterfaceStats struct {
	// Attached are the interfaces counted on now, by name; one that is
	// gone is missing until it is back.
	Attached []AttachMode
	// AttachErrors counts the attempts to attach again to an interface
	// that came back and failed; they are retried every check.
	AttachErrors uint64
}

// Stats returns the interfaces counted on now and how attaching again
// went.
func (s *Interfaces) Stats() InterfaceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := InterfaceStats{AttachErrors: s.attachErrors}
	for _, name := range s.names {
		if a := s.attached[name]; a != nil {
			out.Attached = append(out.Attached, AttachMode{Interface: name, XDP: a.XDPMode, TC: a.TCMode})
		}
	}
	return out
}
