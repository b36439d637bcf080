package agg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/back2basic/collector/traffic"
)

const (
	// finalFlushTimeout bounds the last hand-over at shutdown, which
	// systemd expects to finish within seconds.
	finalFlushTimeout = 3 * time.Second
	// finalRetryPause spaces the attempts of the last hand-over.
	finalRetryPause = 250 * time.Millisecond
)

// Drainer hands over what the kernel counted since the previous call and
// starts the next period from zero, without losing or double-counting any
// packet. Samples whose Traffic is zero are ignored.
type Drainer interface {
	Drain() ([]traffic.Sample, error)
}

// Consumer takes every closed period: the database stores it, the live
// table and metrics add it up. A consumer that returns an error has taken
// nothing; its rows are kept and handed to it again with the next period.
// Consume runs under the flush, one consumer after the other, and should
// be quick. The rows are shared with the other consumers: Consume must not
// change them.
type Consumer interface {
	Consume(ctx context.Context, p traffic.Period) error
}

// Then returns c with a hook: after runs each time c has taken a period,
// as a flush hands it over. It suits a part that reads what c keeps
// rather than the period itself: the sync sends what the database has
// just written. The journal and the metrics name it as c.
func Then(c Consumer, after func()) Consumer {
	return then{c, after}
}

// then is a Consumer with a hook that runs after it took a period.
type then struct {
	Consumer
	after func()
}

func (t then) Consume(ctx context.Context, p traffic.Period) error {
	if err := t.Consumer.Consume(ctx, p); err != nil {
		return err
	}
	t.after()
	return nil
}

func (t then) String() string { return nameOf(t.Consumer) }

// Peeker reads what the kernel counted since the last drain without
// draining it.
type Peeker interface {
	Peek() ([]traffic.Sample, error)
}

// Config tunes an Aggregator; the zero value of each field gives its
// default.
type Config struct {
	// Interval is the time between flushes, on its wall-clock boundaries;
	// default time.Minute.
	Interval time.Duration
	// Log hears about failures and recoveries; default slog.Default().
	Log *slog.Logger
	// MaxPending bounds the rows kept in memory for each consumer that
	// cannot take them; default DefaultMaxPending.
	MaxPending int
	// MinClientBytes is what a client must move in a flush period to get
	// a row of its own; less is added to Other. 0, the default, gives
	// every client a row.
	MinClientBytes uint64
	// MaxClientRows bounds the client rows of one flush period, beside
	// Other: past it, proven clients keep theirs first, then the busiest,
	// and the rest are added to Other; default DefaultMaxClientRows.
	MaxClientRows int
	// Seeder, when set, is told after every flush which clients proved
	// they are real or had rows of their own lately, proven first, at
	// most MaxSeeded of them.
	Seeder    Seeder
	MaxSeeded int
	// Peeker, when set, reads the counters Open offers: the same ones
	// the Drainer drains.
	Peeker Peeker
	// Now reads the clock; default time.Now.
	Now func() time.Time
}

// Aggregator drains a Drainer at wall-clock boundaries of its interval and
// hands each closed period to its consumers, in order. Rows a consumer
// does not take are kept in memory for it, merged with later ones and
// bounded, and handed again on the next flush.
type Aggregator struct {
	drainer Drainer
	queues  []*queue
	cfg     Config

	mu          sync.Mutex // one flush at a time, whoever calls it
	periodStart time.Time
	recent      recentClients
	budget      rowBudget
	full        mapFull

	stats stats
}

// NewAggregator returns an Aggregator that flushes d into consumers. The
// first period starts now. A consumer that has a String method is named by
// it in the journal.
func NewAggregator(d Drainer, cfg Config, consumers ...Consumer) *Aggregator {
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
	if cfg.MaxClientRows <= 0 {
		cfg.MaxClientRows = DefaultMaxClientRows
	}
	a := &Aggregator{
		drainer:     d,
		cfg:         cfg,
		periodStart: cfg.Now(),
		recent:      recentClients{max: cfg.MaxSeeded, keep: recentFor},
		budget:      newRowBudget(),
	}
	for _, c := range consumers {
		a.queues = append(a.queues, newQueue(c))
	}
	a.stats.start(a.periodStart, a.queues)
	return a
}

// errNoPeeker is Open's answer without a Peeker.
var errNoPeeker = errors.New("the open period cannot be read: no Peeker")

// Open returns the open period: what the kernel has counted since the
// last drain, which no consumer has been handed yet, for the live views.
// It does not wait for a flush in progress; one that drains between
// reading the start and the counters makes the period look shorter than
// it is until the next read.
func (a *Aggregator) Open() (traffic.OpenPeriod, error) {
	if a.cfg.Peeker == nil {
		return traffic.OpenPeriod{}, errNoPeeker
	}
	since := a.stats.snapshot().OpenSince
	samples, err := a.cfg.Peeker.Peek()
	if err != nil {
		return traffic.OpenPeriod{}, err
	}
	return traffic.OpenPeriod{Since: since, Samples: samples}, nil
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
	a.stats.opened(a.periodStart)
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

// Flush drains the counters now and hands the period to every consumer,
// with the rows each did not take before. It returns the consumers' errors
// (each logged once per run of failures); their rows stay in memory for
// the next Flush.
func (a *Aggregator) Flush(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The duration is read off the monotonic clock: cfg.Now may be a
	// test's, or a wall clock being stepped.
	began := time.Now()
	p, drained := a.collect()
	err := a.handAll(ctx, p)
	a.stats.flushed(a.cfg.Now(), time.Since(began), drained, err == nil)
	return err
}

// handAll hands p to every consumer. a.mu must be held.
func (a *Aggregator) handAll(ctx context.Context, p period) error {
	var errs []error
	for i, q := range a.queues {
		err := q.hand(ctx, p, a.cfg)
		a.stats.handed(i, len(q.pending), err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// finish is the last flush: the consumers get a few seconds to take it,
// even though ctx is already done.
func (a *Aggregator) finish(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	last, _ := a.collect()
	err := a.handAll(ctx, last)
	for err != nil {
		select {
		case <-ctx.Done():
			return a.abandon(err)
		case <-time.After(finalRetryPause):
		}
		err = a.handAll(ctx, period{start: last.end, end: last.end})
	}
	return nil
}

// abandon logs and returns what consumers never took at shutdown. a.mu
// must be held.
func (a *Aggregator) abandon(err error) error {
	var errs []error
	for _, q := range a.queues {
		if rows, bytes := q.size(); rows > 0 {
			a.cfg.Log.Error("abandon traffic that could not be handed over at shutdown", "consumer", q.name,
				"rows", rows, "bytes", bytes, "timeout", finalFlushTimeout, "err", err)
			errs = append(errs, fmt.Errorf("abandon %d rows (%d bytes) for %s", rows, bytes, q.name))
		}
	}
	return fmt.Errorf("%w: %w", errors.Join(errs...), err)
}

// period is a closed period while it is handed over. Its rows are one
// list for every consumer that has nothing waiting: a flood's flush holds
// a hundred thousand of them.
type period struct {
	start, end time.Time
	rows       []traffic.Row
	proven     []traffic.Client // clients of rows proven lately
}

// rowKey identifies one row: a minute (unix seconds) and a client.
type rowKey struct {
	minute int64
	client traffic.Client
}

// collect drains the counters into a period under the minute the drained
// period started in, and reports whether the drain worked. a.mu must be
// held.
func (a *Aggregator) collect() (p period, drained bool) {
	drainedAt := a.cfg.Now()
	p = period{start: a.periodStart, end: drainedAt}
	samples, err := a.drainer.Drain()
	if err != nil {
		// The kernel keeps counting: the next drain hands over this
		// period's packets too, under this period's start.
		a.cfg.Log.Warn("drain counters", "err", err)
		p.end = p.start
		return p, false
	}
	minute := a.periodStart.Truncate(time.Minute)
	a.periodStart = drainedAt
	a.stats.opened(drainedAt)

	// A client may come in several samples; the budget is on its sum.
	// The sums are the rows themselves, so that a flood's hundred thousand
	// clients are held once, not once summed and again as rows.
	var overflow traffic.Traffic
	rows := make([]traffic.Row, 0, len(samples)+1)
	rowOf := make(map[traffic.Client]int, len(samples))
	proved := make(map[netip.Addr]bool)
	for i := range samples {
		s := &samples[i]
		if s.Client.IsOther() {
			overflow.Add(&s.Traffic)
			continue
		}
		if j, ok := rowOf[s.Client]; ok {
			rows[j].Traffic.Add(&s.Traffic)
		} else {
			rowOf[s.Client] = len(rows)
			rows = append(rows, traffic.Row{Start: minute, Client: s.Client, Traffic: s.Traffic})
		}
		if s.Proven {
			proved[s.Client.Addr()] = true
		}
	}
	rowOf = nil // garbage before the budget allocates
	a.full.update(a.cfg.Log, drainedAt, &overflow)
	a.stats.overflowed(&overflow)
	b := a.budgetRows(minute, drainedAt, rows, overflow, proved)
	p.rows, p.proven = b.rows, b.proven
	if a.cfg.Seeder != nil {
		a.recent.note(drainedAt, b.own)
		a.cfg.Seeder.Seed(a.seedList())
	}
	return p, true
}

// add adds t to the entry k of rows.
func add[K comparable](rows map[K]*traffic.Traffic, k K, t *traffic.Traffic) {
	sum := rows[k]
	if sum == nil {
		sum = new(traffic.Traffic)
		rows[k] = sum
	}
	sum.Add(t)
}

// list returns rows as traffic rows.
func list(rows map[rowKey]*traffic.Traffic) []traffic.Row {
	out := make([]traffic.Row, 0, len(rows))
	for k, t := range rows {
		out = append(out, traffic.Row{Start: time.Unix(k.minute, 0), Client: k.client, Traffic: *t})
	}
	return out
}
