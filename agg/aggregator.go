package agg

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/back2basic/collector/bpfgo"
)

const (
	// finalFlushTimeout bounds the last write at shutdown, which systemd
	// expects to finish within seconds.
	finalFlushTimeout = 3 * time.Second
	// finalRetryPause spaces the attempts of the last write.
	finalRetryPause = 250 * time.Millisecond
	// fillWindow is how far back a name found late is filled into rows
	// stored without one. Names normally arrive within seconds; the bound
	// keeps the set of clients waiting for one small and the UPDATE on a
	// short range of the primary key.
	fillWindow = time.Hour
)

// Drainer hands over what the kernel counted since the previous call and
// starts the next period from zero, without losing or double-counting any
// packet. Samples whose Traffic is zero are ignored.
type Drainer interface {
	Drain() ([]bpfgo.Sample, error)
}

// Aggregator drains a Drainer at wall-clock boundaries of its interval and
// adds the samples to a Store. Rows that cannot be written are kept in memory,
// merged with later ones, and retried on the next flush.
type Aggregator struct {
	drainer  Drainer
	store    *Store
	log      *slog.Logger
	interval time.Duration
	resolver *Resolver
	now      func() time.Time

	mu          sync.Mutex // one flush at a time, whoever calls it
	periodStart time.Time
	pending     map[rowKey]*row
	unnamed     map[netip.Addr]int64 // stored without a name -> earliest minute
	failing     bool
	failedAt    time.Time
}

// NewAggregator returns an Aggregator that flushes d into st every interval
// (time.Minute when not positive), logging to log (nil: slog.Default()).
// res may be nil for no reverse DNS; now may be nil for time.Now. The first
// period starts now.
func NewAggregator(d Drainer, st *Store, log *slog.Logger, interval time.Duration, res *Resolver, now func() time.Time) *Aggregator {
	if interval <= 0 {
		interval = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Aggregator{
		drainer:     d,
		store:       st,
		log:         log,
		interval:    interval,
		resolver:    res,
		now:         now,
		periodStart: now(),
		pending:     make(map[rowKey]*row),
		unnamed:     make(map[netip.Addr]int64),
	}
}

// nextFlush returns the first boundary of interval after now: with a minute,
// the next :00.
func nextFlush(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}

// Run flushes at every boundary of the interval until ctx is done, then
// drains and flushes one last time, retrying for a few seconds. It returns
// nil unless rows had to be abandoned at that point; failures before are
// logged and retried.
func (a *Aggregator) Run(ctx context.Context) error {
	a.mu.Lock()
	a.periodStart = a.now()
	a.mu.Unlock()
	for a.waitUntil(ctx, nextFlush(a.now(), a.interval)) {
		// A failure is logged by write and retried next round.
		_ = a.Flush(ctx)
	}
	return a.finish(ctx)
}

// waitUntil sleeps until the clock reads t and reports whether it got there
// before ctx was done. The clock is read again on each wake-up because timers
// follow the monotonic clock, which can run ahead of a wall clock being
// slewed; a drain just before the boundary would start the next period, and
// file it, in the minute that is ending.
func (a *Aggregator) waitUntil(ctx context.Context, t time.Time) bool {
	for {
		d := t.Sub(a.now())
		if d <= 0 {
			return true
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// Flush drains the counters now and writes every row waiting, this period's
// and those kept from failed writes, in one transaction. When the write
// fails the rows stay in memory for the next Flush, and the error is
// returned (and logged once per run of failures).
func (a *Aggregator) Flush(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.collect()
	return a.write(ctx)
}

// finish is the last flush: the database gets a few seconds to accept it,
// even though ctx is already done.
func (a *Aggregator) finish(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.collect()
	for {
		err := a.write(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			rows, bytes := a.pendingSize()
			a.log.Error("abandon traffic that could not be stored at shutdown", "rows", rows, "bytes", bytes, "timeout", finalFlushTimeout, "err", err)
			return fmt.Errorf("abandon %d rows (%d bytes): %w", rows, bytes, err)
		case <-time.After(finalRetryPause):
		}
	}
}

// collect drains the counters into the pending rows, under the minute the
// drained period started in. a.mu must be held.
func (a *Aggregator) collect() {
	drainedAt := a.now()
	samples, err := a.drainer.Drain()
	if err != nil {
		// The kernel keeps counting: the next drain hands over this
		// period's packets too, under this period's start.
		a.log.Warn("drain counters", "err", err)
		return
	}
	minute := a.periodStart.Truncate(time.Minute).Unix()
	a.periodStart = drainedAt
	for i := range samples {
		s := &samples[i]
		if s.Traffic.IsZero() {
			continue
		}
		k := rowKey{minute: minute}
		if !s.Overflow {
			k.client = s.Client.Unmap()
		}
		r := a.pending[k]
		if r == nil {
			r = &row{}
			a.pending[k] = r
		}
		r.traffic.Add(&s.Traffic)
	}
}

// write stores the pending rows and clears them on success. It logs when
// writing starts failing and when it recovers, not on every attempt. a.mu
// must be held.
func (a *Aggregator) write(ctx context.Context) error {
	fills := a.names()
	if len(a.pending) == 0 && len(fills) == 0 {
		return nil
	}
	if err := a.store.write(ctx, a.pending, fills); err != nil {
		// A write cut short by ctx says nothing about the database.
		if !a.failing && ctx.Err() == nil {
			a.failing, a.failedAt = true, a.now()
			a.log.Warn("cannot store traffic; keeping it in memory and retrying every flush", "rows", len(a.pending), "err", err)
		}
		return err
	}
	if a.failing {
		a.failing = false
		a.log.Info("storing traffic again", "rows", len(a.pending), "failed_for", a.now().Sub(a.failedAt).Round(time.Second))
	}
	a.trackUnnamed(fills)
	clear(a.pending)
	return nil
}

// names gives pending rows the names the resolver knows by now and returns
// the names that have turned up for clients stored without one. a.mu must be
// held.
func (a *Aggregator) names() []nameFill {
	if a.resolver == nil {
		return nil
	}
	for k, r := range a.pending {
		if r.dns == "" {
			r.dns = a.resolver.Name(k.client)
		}
	}
	oldest := a.now().Add(-fillWindow).Unix()
	var fills []nameFill
	for client, since := range a.unnamed {
		if since < oldest {
			delete(a.unnamed, client)
			continue
		}
		if name := a.resolver.Name(client); name != "" {
			fills = append(fills, nameFill{client: client, name: name, since: since})
		}
	}
	return fills
}

// trackUnnamed updates the clients waiting for a name after a successful
// write: the filled ones have it, the ones just stored without one wait. The
// set is bounded like the resolver's cache, beyond which names would be
// forgotten before they could be filled in anyway. a.mu must be held.
func (a *Aggregator) trackUnnamed(fills []nameFill) {
	if a.resolver == nil {
		return
	}
	for _, f := range fills {
		delete(a.unnamed, f.client)
	}
	for k, r := range a.pending {
		if r.dns != "" || !k.client.IsValid() {
			continue
		}
		since, ok := a.unnamed[k.client]
		if (ok && k.minute < since) || (!ok && len(a.unnamed) < a.resolver.size) {
			a.unnamed[k.client] = k.minute
		}
	}
}

// pendingSize returns the number of rows waiting and the bytes they count.
func (a *Aggregator) pendingSize() (rows int, bytes uint64) {
	for _, r := range a.pending {
		bytes += r.traffic.Bytes()
	}
	return len(a.pending), bytes
}
