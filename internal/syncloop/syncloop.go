// Package syncloop runs a copy of the local rows to a central target, the
// same way for every target (package pgsync's PostgreSQL, package
// httpsync's HTTPS endpoint): right away, after every flush and every
// interval; failures retried with exponential backoff and jitter, logged
// once as an outage starts and once as it ends; a bounded last sync at
// shutdown; and the counts the metrics read. What a sync sends, and how,
// is the target's: the loop only calls it.
package syncloop

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/store"
)

// Defaults of Config.
const (
	DefaultInterval   = time.Minute
	DefaultMaxBackoff = 5 * time.Minute
)

// MinBackoff is the wait after a first failure; it doubles with each
// failure after, up to Config.MaxBackoff.
const MinBackoff = time.Second

// LastSyncTimeout bounds the sync at shutdown, within systemd's stop
// timeout.
const LastSyncTimeout = 5 * time.Second

// Sent counts the rows a sync sent, per local table.
type Sent [store.Days + 1]int

// Total is the rows sent of every table.
func (s Sent) Total() int { return s[store.Minutes] + s[store.Hours] + s[store.Days] }

// Config says what a Loop runs and how often.
type Config struct {
	// Target names the target in metrics, a label value: postgres, http.
	Target string
	// Name names it in the journal: "PostgreSQL", "the HTTP endpoint".
	Name string
	// Host is the id this host's rows are sent under, for Stats.
	Host string
	// Send sends every row the target lacks, batch after batch, and
	// returns what it sent, also when it failed part way.
	Send func(ctx context.Context) (Sent, error)
	// Store, Cursor and Tables say where the rows waiting to be sent
	// are: the tables sent, and the name of the target's cursors in the
	// store (store.SyncCursor).
	Store  *store.Store
	Cursor string
	Tables []store.Table
	// Interval is the time between syncs when no flush asks for one
	// sooner; default DefaultInterval.
	Interval time.Duration
	// MaxBackoff is the longest wait between attempts while they fail;
	// default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Log hears about outages, once each way; default slog.Default().
	Log *slog.Logger
}

// Loop runs the syncs of one target.
type Loop struct {
	cfg    Config
	poke   chan struct{}
	outage outage.Outage

	mu    sync.Mutex
	stats Stats
	// caughtUp is when the sync last had nothing left to send, or when
	// the Loop was made.
	caughtUp time.Time
}

// New returns a Loop running cfg.Send.
func New(cfg Config) *Loop {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Loop{
		cfg:      cfg,
		poke:     make(chan struct{}, 1),
		caughtUp: time.Now(),
		stats:    Stats{Target: cfg.Target, Host: cfg.Host},
		outage: outage.Outage{
			Start: "cannot sync to " + cfg.Name + "; rows wait in the local database, retrying with backoff",
			End:   "syncing to " + cfg.Name + " again",
		},
	}
}

// AfterFlush asks Run for a sync now that a flush has stored a period
// in the local database, without waiting for it: the sync is never in the
// way of counting or of the local database. The daemon calls it after the
// store took each period (agg.Then).
func (l *Loop) AfterFlush() {
	select {
	case l.poke <- struct{}{}:
	default: // one is due already
	}
}

// Run syncs right away, then after every flush (AfterFlush) and every
// Interval, until ctx is done. Failures are logged once as they start,
// with the rows waiting, and once as they end, and retried with
// exponential backoff; meanwhile the rows wait in the local database,
// bounded by its retention. Once ctx is done it makes one last attempt,
// bounded by LastSyncTimeout, for the rows of the daemon's last flush,
// and returns nil.
func (l *Loop) Run(ctx context.Context) error {
	failures := 0
	for {
		wait, poke := l.cfg.Interval, l.poke
		if err := l.attempt(ctx); err != nil {
			failures++
			wait, poke = Backoff(failures, l.cfg.MaxBackoff), nil
		} else {
			failures = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), LastSyncTimeout)
			defer cancel()
			_ = l.attempt(last) // a failure is logged; the rows wait for the next start
			return nil
		case <-timer.C:
		case <-poke:
			timer.Stop()
		}
	}
}

// Backoff returns the wait after the nth failure in a row: doubling from
// MinBackoff up to most, each drawn from its upper half, so that hosts
// that lost the target together do not all come back at once.
func Backoff(n int, most time.Duration) time.Duration {
	d := most
	if n < 32 {
		d = min(MinBackoff<<(n-1), most)
	}
	return d/2 + rand.N(d/2+1)
}

// attempt is one sync of Run, with what it logs and counts.
func (l *Loop) attempt(ctx context.Context) error {
	sent, err := l.sync(ctx)
	if ctx.Err() != nil {
		return err // stopped, not failed
	}
	now := time.Now()
	var attrs []any
	if err != nil {
		pending, lag := l.failed(ctx, now)
		attrs = []any{"pending_rows", pending, "lag", lag.Round(time.Second)}
	} else {
		attrs = []any{"sent_rows", sent.Total()}
	}
	l.outage.Update(ctx, l.cfg.Log, now, err, attrs...)
	return err
}

// SyncOnce sends every row the target lacks, as Run does once, without
// retrying, and returns what it sent.
func (l *Loop) SyncOnce(ctx context.Context) (Sent, error) {
	sent, err := l.sync(ctx)
	if err != nil {
		l.failed(ctx, time.Now())
	}
	return sent, err
}

// sync runs Send and counts what it did.
func (l *Loop) sync(ctx context.Context) (Sent, error) {
	sent, err := l.cfg.Send(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Sent += uint64(sent.Total())
	if err == nil {
		now := time.Now()
		l.stats.Pending, l.stats.Failing, l.stats.LastSuccess, l.caughtUp = 0, false, now, now
	}
	return sent, err
}

// failed records a failed sync and returns how many rows wait and how
// long they have, for the journal.
func (l *Loop) failed(ctx context.Context, now time.Time) (pending int, lag time.Duration) {
	pending, err := l.Pending(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Failures++
	l.stats.Failing = true
	if err == nil {
		l.stats.Pending = pending
	}
	return l.stats.Pending, now.Sub(l.caughtUp)
}

// Pending counts the rows waiting to be sent now.
func (l *Loop) Pending(ctx context.Context) (int, error) {
	total := 0
	for _, t := range l.cfg.Tables {
		from, err := l.cfg.Store.SyncCursor(ctx, l.cfg.Cursor, t)
		if err != nil {
			return 0, err
		}
		n, err := l.cfg.Store.Pending(ctx, t, from)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// Stats is how a sync goes: what metrics report, and what the journal
// says once per outage.
type Stats struct {
	// Target names the target, as Config.Target.
	Target string
	// Host is the id this host's rows are sent under.
	Host string
	// Pending counts the rows waiting to be sent, as of the last
	// attempt: 0 once one sent everything, counted when one failed.
	Pending int
	// Lag is how long rows have waited to be sent: the time since the
	// sync last had nothing left to send, or since the Loop was made;
	// 0 while the last attempt sent everything.
	Lag time.Duration
	// Sent counts the rows sent since the Loop was made; a batch sent
	// again after a failure counts again.
	Sent uint64
	// Failures counts the attempts that failed; Failing reports whether
	// the last one did.
	Failures uint64
	Failing  bool
	// LastSuccess is when an attempt last sent everything; zero before
	// the first.
	LastSuccess time.Time
}

// Stats returns how the sync goes now. It does not wait for a sync in
// progress.
func (l *Loop) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	if st.Failing || st.Pending > 0 {
		st.Lag = time.Since(l.caughtUp)
	}
	return st
}
