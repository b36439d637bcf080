// Package hostdpoll reads hostd's 5-minute metrics every few minutes and
// stores what hostd counted in each period beside the traffic: from the
// last period stored on, so that an outage is caught up once hostd answers
// again, as far back as the minute rows are kept.
//
// It runs on its own goroutine with its own timeout and shares no lock
// with counting or flushing across a request: a hostd that is down, slow
// or refuses the password costs one journal line as the outage starts and
// one as it ends, and nothing else.
package hostdpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/store"
)

// Defaults of Poller's fields.
const (
	DefaultInterval  = 2 * time.Minute
	DefaultTimeout   = 30 * time.Second
	DefaultFirstLook = 24 * time.Hour
)

const (
	// settle is how long after a period ends its totals are taken as
	// final: hostd writes its counters once a minute.
	settle = time.Minute
	// chunk is the most periods asked for at once: a day, about 300 KiB
	// of hostd's JSON, well within what the client reads of an answer.
	chunk = 288
)

// Store is where the periods go; *store.Store is one.
type Store interface {
	LastHostdPeriod(ctx context.Context) (time.Time, bool, error)
	WriteHostdPeriods(ctx context.Context, periods []store.HostdFigures) error
}

// Poller reads hostd into a Store. Set Client, Store and Log; the other
// fields have defaults.
type Poller struct {
	Client *hostd.Client
	Store  Store
	Log    *slog.Logger
	// Interval is the time between two reads.
	Interval time.Duration
	// Timeout bounds one read, however many requests it makes; default
	// DefaultTimeout, or Interval when that is shorter, so that reads
	// never overlap.
	Timeout time.Duration
	// FirstLook is how far back the first read on an empty table reaches.
	FirstLook time.Duration
	// MaxBack is how far back a read ever reaches: the minute rows'
	// retention, since the store keeps no period older. 0: FirstLook.
	MaxBack time.Duration
	// Now reads the clock; default time.Now.
	Now func() time.Time

	unreachable outage.Outage // hostd down, slow, refusing, or answering nonsense
	noSyncer    outage.Outage // a hostd before 2.6.0, without syncer and QUIC figures
	writing     outage.Outage // the database refusing the periods
}

// errNoSyncer is the "outage" of a hostd too old to count syncer bytes.
var errNoSyncer = errors.New("hostd before 2.6.0 counts no syncer bytes and no RHP4 over QUIC: storing its RHP figures only")

func (p *Poller) defaults() {
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if p.Timeout <= 0 {
		p.Timeout = min(DefaultTimeout, p.Interval)
	}
	if p.FirstLook <= 0 {
		p.FirstLook = DefaultFirstLook
	}
	if p.MaxBack <= 0 {
		p.MaxBack = p.FirstLook
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.unreachable.Start == "" {
		p.unreachable = outage.Outage{Start: "cannot read hostd's metrics; retrying", End: "reading hostd's metrics again"}
		p.noSyncer = outage.Outage{Start: "hostd has no syncer figures", End: "hostd has syncer figures again"}
		p.writing = outage.Outage{Start: "cannot store hostd's metrics; retrying", End: "storing hostd's metrics again"}
	}
}

// Run reads hostd now and every Interval until ctx is done.
func (p *Poller) Run(ctx context.Context) error {
	p.defaults()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Poll reads and stores the periods that ended since the last one stored,
// within Timeout. Failures are logged once per outage.
func (p *Poller) Poll(ctx context.Context) {
	p.defaults()
	// The outages hear of ctx, not of the timeout: a read cut short by
	// the timeout is a slow hostd; one cut short by the daemon stopping
	// says nothing about hostd.
	bounded, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	now := p.Now()
	stored, err := p.read(bounded, now)
	var storeErr *storeError
	if errors.As(err, &storeErr) {
		p.writing.Update(ctx, p.Log, now, storeErr.error)
		return
	}
	p.unreachable.Update(ctx, p.Log, now, err, "api", p.Client.String())
	if err == nil {
		p.writing.Update(ctx, p.Log, now, nil)
	}
	if stored > 0 {
		p.Log.Debug("stored hostd's periods", "periods", stored)
	}
}

// storeError is a failure of the database rather than of hostd.
type storeError struct{ error }

// read reads the periods up to the last final one as of now and stores
// them, returning how many it stored.
func (p *Poller) read(ctx context.Context, now time.Time) (int, error) {
	// hostd is asked every time, even with no period to read: an outage
	// is noticed, and its end told, within an interval.
	state, err := p.Client.State(ctx)
	if err != nil {
		return 0, err
	}
	lastFinal := now.Add(-hostd.Period - settle).Truncate(hostd.Period)
	from, ok, err := p.Store.LastHostdPeriod(ctx)
	if err != nil {
		return 0, &storeError{err}
	}
	if !ok {
		from = now.Add(-p.FirstLook)
	}
	if oldest := now.Add(-p.MaxBack); from.Before(oldest) {
		from = oldest
	}
	from = from.Truncate(hostd.Period)
	if !from.Before(lastFinal) {
		return 0, nil
	}
	stored := 0
	for from.Before(lastFinal) {
		// from's totals are the starting point of the periods after it.
		n := min(int(lastFinal.Sub(from)/hostd.Period)+1, chunk)
		totals, err := p.Client.PeriodMetrics(ctx, from, n)
		if err != nil {
			return stored, err
		}
		if len(totals) < 2 || !totals[len(totals)-1].Timestamp.After(from) {
			return stored, fmt.Errorf("hostd answered %d periods from %s, asked for %d", len(totals), from.UTC().Format(time.RFC3339), n)
		}
		p.noSyncer.Update(context.WithoutCancel(ctx), p.Log, now, syncerMissing(totals), "version", state.Version)
		usages, skipped := hostd.Usages(totals)
		if skipped > 0 {
			p.Log.Info("hostd's totals went down or skipped a period: its metrics started over; those periods are left out", "periods", skipped, "from", from)
		}
		if err := p.Store.WriteHostdPeriods(ctx, figures(usages, state.Version)); err != nil {
			return stored, &storeError{err}
		}
		stored += len(usages)
		from = totals[len(totals)-1].Timestamp
	}
	return stored, nil
}

// syncerMissing returns errNoSyncer when an entry has no syncer figures.
func syncerMissing(totals []hostd.Metrics) error {
	for _, m := range totals {
		if m.Data.Syncer == nil {
			return errNoSyncer
		}
	}
	return nil
}

// figures turns usages into the store's rows. hostd counts syncer bytes
// and RHP4 over QUIC from the same release (2.6.0) on, so a period with
// syncer figures is one whose RHP figures count QUIC.
func figures(usages []hostd.Usage, version string) []store.HostdFigures {
	out := make([]store.HostdFigures, len(usages))
	for i, u := range usages {
		f := store.HostdFigures{
			Start:       u.Start,
			Periods:     1,
			RHP:         store.HostdData(u.RHP),
			EgressPrice: hostd.SCPerTB(u.EgressPrice),
			Version:     version,
			QUIC:        u.Syncer != nil,
		}
		if u.Syncer != nil {
			s := store.HostdData(*u.Syncer)
			f.Syncer = &s
		}
		if paid, ok := u.PaidEgress(); ok {
			f.PaidEgress = &paid
		}
		out[i] = f
	}
	return out
}
