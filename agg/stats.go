package agg

import (
	"slices"
	"sync"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Stats is how the flushes went since the Aggregator was made: what
// metrics report about the collector's health.
type Stats struct {
	// Flushes counts the flushes at the interval (Flush), failed ones
	// included.
	Flushes uint64
	// LastFlush is when the last flush ended, zero before the first, and
	// LastFlushDuration how long it took: the drain and every consumer.
	LastFlush         time.Time
	LastFlushDuration time.Duration
	// LastSuccess is when the last flush ended whose drain worked and
	// whose rows every consumer took, so that nothing counted before it
	// waits in memory. Until the first such flush it is when the
	// Aggregator was made: nothing waited then either, and a collector
	// just started is not stalled.
	LastSuccess time.Time
	// DrainErrors counts the flushes whose drain failed; the kernel kept
	// counting, and the next drain handed that traffic over.
	DrainErrors uint64
	// Overflow is what the kernel counted in its overflow entry, for the
	// clients that found the counter map full (MAX_CLIENTS).
	Overflow traffic.Tally
	// FoldedRows counts the client rows the row budget (MaxClientRows)
	// added to Other instead, and FoldedBytes the bytes they held.
	FoldedRows  uint64
	FoldedBytes uint64
	// Consumers are the consumers, in the order they are handed periods.
	Consumers []ConsumerStats
	// OpenSince is when the period being counted began: what the kernel
	// holds now, not drained yet, was counted since then.
	OpenSince time.Time
}

// ConsumerStats is how one consumer takes its periods.
type ConsumerStats struct {
	// Name is the consumer's String, or its type without one.
	Name string
	// PendingRows are the rows it did not take, kept for it in memory.
	PendingRows int
	// Errors counts the periods it refused.
	Errors uint64
}

// Stats returns how the flushes went so far. It does not wait for a
// running flush, which may be held up by a consumer writing to disk.
func (a *Aggregator) Stats() Stats {
	return a.stats.snapshot()
}

// stats are the numbers Stats reports, behind a lock of their own rather
// than a.mu, which a flush holds for as long as its consumers take.
type stats struct {
	mu sync.Mutex
	s  Stats
}

// start sets the stats of an Aggregator made at now with queues.
func (s *stats) start(now time.Time, queues []*queue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.LastSuccess, s.s.OpenSince = now, now
	for _, q := range queues {
		s.s.Consumers = append(s.s.Consumers, ConsumerStats{Name: q.name})
	}
}

// flushed records a flush that ended at at and took took; drained says
// whether its drain worked, handed whether every consumer took its rows.
func (s *stats) flushed(at time.Time, took time.Duration, drained, handed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Flushes++
	s.s.LastFlush, s.s.LastFlushDuration = at, took
	if !drained {
		s.s.DrainErrors++
	}
	if drained && handed {
		s.s.LastSuccess = at
	}
}

// opened records that the period being counted began at t.
func (s *stats) opened(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.OpenSince = t
}

// overflowed adds what a drain found in the overflow entry.
func (s *stats) overflowed(t *traffic.Traffic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Overflow.Add(traffic.Tally{Bytes: t.Bytes(), Packets: t.Packets()})
}

// folded adds the client rows and bytes a flush's row budget added to
// Other.
func (s *stats) folded(rows int, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.FoldedRows += uint64(rows)
	s.s.FoldedBytes += bytes
}

// handed records that consumer i was handed a period and now has pending
// rows waiting, having refused the period when err is set.
func (s *stats) handed(i, pending int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.s.Consumers[i]
	c.PendingRows = pending
	if err != nil {
		c.Errors++
	}
}

func (s *stats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.s
	out.Consumers = slices.Clone(s.s.Consumers)
	return out
}
