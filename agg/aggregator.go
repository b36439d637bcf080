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
)

// Drainer hands over what the kernel counted since the previous call and
// starts the next period from zero, without losing or double-counting any
// packet. Samples whose Traffic is zero are ignored.
type Drainer interface {
	Drain() ([]bpfgo.Sample, error)
}

// Config tunes an Aggregator; the zero value of each field gives its
// default.
type Config struct {
	// Interval is the time between flushes, on its wall-clock boundaries;
	// default time.Minute.
	Interval time.Duration
	// Log hears about failures and recoveries; default slog.Default().
	Log *slog.Logger
	// Resolver finds client names to store; nil stores none.
	Resolver *Resolver
	// Retention says how long minute and hourly rows are kept.
	Retention Retention
	// MaxPending bounds the rows kept in memory while the database cannot
	// be written; default DefaultMaxPending.
	MaxPending int
	// MinClientBytes is what a client must move in a flush period to get
	// a row of its own; less is added to 'other'. 0 gives every client a
	// row.
	MinClientBytes uint64
	// Seeder, when set, is told after every flush which clients had rows
	// of their own lately, at most MaxSeeded of them.
	Seeder    Seeder
	MaxSeeded int
	// Stored, when set, is handed the rows of every successful write, so
	// a reader can keep totals of its own rather than query the database
	// again. It runs under the flush and must be quick.
	Stored func(rows []Row)
	// Now reads the clock; default time.Now.
	Now func() time.Time
}

// Aggregator drains a Drainer at wall-clock boundaries of its interval and
// adds the samples to a Store, then rolls up closed hours and days and
// applies retention. Rows that cannot be written are kept in memory, merged
// with later ones, and retried on the next flush.
type Aggregator struct {
	drainer Drainer
	store   *Store
	cfg     Config

	mu          sync.Mutex // one flush at a time, whoever calls it
	periodStart time.Time
	pending     map[rowKey]*bpfgo.Traffic
	names       map[netip.Addr]name // found, not stored yet
	nearCap     bool                // warned that pending nears MaxPending
	recent      recentClients
	full        mapFull
	writes      outage
	rollups     outage
}

// NewAggregator returns an Aggregator that flushes d into st. The first
// period starts now.
func NewAggregator(d Drainer, st *Store, cfg Config) *Aggregator {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Aggregator{
		drainer:     d,
		store:       st,
		cfg:         cfg,
		periodStart: cfg.Now(),
		pending:     make(map[rowKey]*bpfgo.Traffic),
		names:       make(map[netip.Addr]name),
		recent:      recentClients{max: cfg.MaxSeeded},
		writes: outage{
			start: "cannot store traffic; keeping it in memory and retrying every flush",
			end:   "storing traffic again",
		},
		rollups: outage{
			start: "cannot roll up or apply retention; retrying every flush",
			end:   "rolling up again",
		},
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
	a.periodStart = a.cfg.Now()
	a.mu.Unlock()
	for a.waitUntil(ctx, nextFlush(a.cfg.Now(), a.cfg.Interval)) {
		// A failure is logged by Flush and retried next round.
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
		d := t.Sub(a.cfg.Now())
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
// returned (and logged once per run of failures). When it succeeds, the
// hours closed by now are rolled up and retention applied, for as long as
// half the interval at most.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.collect()
	if err := a.write(ctx); err != nil {
		return err
	}
	// Rows drained from now on are filed under this period's minute or
	// later, so every hour before it is closed.
	err := a.store.maintain(ctx, a.periodStart, a.cfg.Now(), a.cfg.Retention, a.cfg.Interval/2)
	a.rollups.update(ctx, a.cfg.Log, a.cfg.Now(), err)
	return err
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
			a.cfg.Log.Error("abandon traffic that could not be stored at shutdown", "rows", rows, "bytes", bytes, "timeout", finalFlushTimeout, "err", err)
			return fmt.Errorf("abandon %d rows (%d bytes): %w", rows, bytes, err)
		case <-time.After(finalRetryPause):
		}
	}
}

// collect drains the counters into the pending rows, under the minute the
// drained period started in, and asks for the names of the clients. a.mu
// must be held.
func (a *Aggregator) collect() {
	drainedAt := a.cfg.Now()
	samples, err := a.drainer.Drain()
	if err != nil {
		// The kernel keeps counting: the next drain hands over this
		// period's packets too, under this period's start.
		a.cfg.Log.Warn("drain counters", "err", err)
		return
	}
	minute := a.periodStart.Truncate(time.Minute).Unix()
	a.periodStart = drainedAt

	// A client may come in several samples; the threshold is on its sum.
	var overflow bpfgo.Traffic
	period := make(map[netip.Addr]*bpfgo.Traffic)
	for i := range samples {
		s := &samples[i]
		if s.Overflow {
			overflow.Add(&s.Traffic)
		} else {
			add(period, s.Client.Unmap(), &s.Traffic)
		}
	}
	a.full.update(a.cfg.Log, drainedAt, &overflow)
	other := overflow
	var own []netip.Addr
	for client, t := range period {
		if t.IsZero() {
			continue
		}
		if t.Bytes() < a.cfg.MinClientBytes {
			other.Add(t)
			continue
		}
		own = append(own, client)
		// Only clients that moved real data are looked up: a forged
		// address must not make the host query the attacker's DNS.
		a.cfg.Resolver.Request(client)
		add(a.pending, rowKey{minute: minute, client: client}, t)
	}
	if !other.IsZero() {
		add(a.pending, rowKey{minute: minute}, &other)
	}
	if a.cfg.Seeder != nil {
		a.recent.note(drainedAt, own)
		a.cfg.Seeder.Seed(a.recent.list())
	}
	a.bound()
}

// add adds t to the entry k of rows.
func add[K comparable](rows map[K]*bpfgo.Traffic, k K, t *bpfgo.Traffic) {
	sum := rows[k]
	if sum == nil {
		sum = new(bpfgo.Traffic)
		rows[k] = sum
	}
	sum.Add(t)
}

// write stores the pending rows and the names found, and clears them on
// success. a.mu must be held.
func (a *Aggregator) write(ctx context.Context) error {
	for addr, n := range a.cfg.Resolver.takeFound() {
		// Bounded like the resolver's cache; a name left out is found
		// again at its next lookup.
		if _, ok := a.names[addr]; ok || len(a.names) < a.cfg.Resolver.size {
			a.names[addr] = n
		}
	}
	if len(a.pending) == 0 && len(a.names) == 0 {
		return nil
	}
	rows := len(a.pending)
	err := a.store.write(ctx, a.pending, a.names)
	a.writes.update(ctx, a.cfg.Log, a.cfg.Now(), err, "rows", rows)
	if err != nil {
		return err
	}
	if a.cfg.Stored != nil {
		out := make([]Row, 0, len(a.pending))
		for k, t := range a.pending {
			out = append(out, Row{Start: time.Unix(k.minute, 0), Client: k.client, Overflow: !k.client.IsValid(), Traffic: *t})
		}
		a.cfg.Stored(out)
	}
	clear(a.pending)
	clear(a.names)
	a.nearCap = false
	return nil
}

// pendingSize returns the number of rows waiting and the bytes they count.
func (a *Aggregator) pendingSize() (rows int, bytes uint64) {
	for _, t := range a.pending {
		bytes += t.Bytes()
	}
	return len(a.pending), bytes
}

// outage logs a run of failures of one kind once as it starts and once as
// it ends, not on every attempt.
type outage struct {
	start, end string // the messages
	failing    bool
	since      time.Time
}

// update records the outcome of an attempt at time now. A failure because
// ctx is done says nothing about the database and is not logged.
func (o *outage) update(ctx context.Context, log *slog.Logger, now time.Time, err error, attrs ...any) {
	switch {
	case err != nil && !o.failing && ctx.Err() == nil:
		o.failing, o.since = true, now
		log.Warn(o.start, append(attrs, "err", err)...)
	case err == nil && o.failing:
		o.failing = false
		log.Info(o.end, append(attrs, "failed_for", now.Sub(o.since).Round(time.Second))...)
	}
}
