package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

const (
	// saveTimeout bounds saving alerts within a flush, which must stay
	// quick; what is not saved is tried again with the next period.
	saveTimeout = 2 * time.Second
	// keepResolved is how long resolved alerts stay in the database.
	keepResolved = 90 * 24 * time.Hour
)

// Store is where a Detector reads the traffic history from and keeps its
// alerts: *store.Store.
type Store interface {
	ClassMinutes(ctx context.Context, class traffic.Class, since time.Time, fn func(store.ClassMinute) error) error
	TopClients(ctx context.Context, q store.Query, n int, classes []traffic.Class) (store.Top, error)
	SaveAlert(ctx context.Context, a store.SavedAlert) error
	Alerts(ctx context.Context, resolvedSince time.Time) ([]store.SavedAlert, error)
	ForgetAlerts(ctx context.Context, resolvedBefore time.Time) error
	RHPMinutes(ctx context.Context, since time.Time, fn func(minute time.Time, bytes uint64) error) error
	HostdPeriods(ctx context.Context, from, to time.Time) ([]store.HostdFigures, error)
}

// Config sets up a Detector; the zero value of each field but Store gives
// its default.
type Config struct {
	Store Store
	// Log gets a warning for every alert firing and resolving, and hears
	// about alerts that cannot be saved; default slog.Default().
	Log *slog.Logger
	// Now reads the clock at Load; default time.Now. Consume goes by the
	// periods' times.
	Now        func() time.Time
	Spike      Spike
	Quota      Quota
	Divergence Divergence
	// Notify, when set, is told of every alert too: the webhook.
	Notify Notifier
}

// Detector raises alerts on the closed periods it consumes: consensus
// spikes of the host and of each client, billing period quotas used up,
// and, with what hostd counted (Hostd), the RHP bytes on the wire
// diverging from hostd's count. Every alert is a warning in the journal, is saved in the database,
// and goes to Notify. Its methods are safe for concurrent use; Consume is
// meant to be called one period at a time, as the aggregator does.
type Detector struct {
	cfg Config

	mu         sync.Mutex  // the state below against Active and QuotaUse
	spikes     *spikes     // nil when off
	quotas     *quotas     // nil without a quota
	divergence *divergence // nil when off

	// Until Learn has read the spike baselines, spikes judges nothing:
	// the periods consumed wait in pending, and the spike alerts restored
	// by Load in restored, for the spikes Learn builds.
	learned  bool
	pending  []traffic.Period
	restored []Alert
	loadedAt time.Time // the clock at Load

	unsaved []Alert // alerts whose save failed, retried with the next period
	saving  outage.Outage
}

// New returns a Detector as cfg says, with no history: call Load before
// the first period, and Learn once the daemon is ready.
func New(cfg Config) (*Detector, error) {
	if cfg.Store == nil {
		return nil, errors.New("alerts: no store")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var err error
	if cfg.Quota, err = cfg.Quota.withDefaults(); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	d := &Detector{cfg: cfg, saving: outage.Outage{
		Start: "cannot save alerts; a restart now could raise them again; retrying every flush",
		End:   "saving alerts again",
	}}
	if !cfg.Spike.Off {
		d.spikes = newSpikes(cfg.Spike)
	}
	if cfg.Quota.Set() {
		d.quotas = newQuotas(cfg.Quota)
		d.quotas.begin(cfg.Now(), traffic.Traffic{})
	}
	if !cfg.Divergence.Off {
		d.divergence = newDivergence(cfg.Divergence)
	}
	return d, nil
}

// String names the detector in the journal.
func (d *Detector) String() string { return "the alerts" }

// Load reads what the detector needs before the first period, all of it
// quick to read: what the billing period used so far; the alerts still
// firing, so that they are neither raised again nor forgotten; and the
// spikes resolved within the cooldown. A threshold of a quota found
// crossed, or an alert of a period over or of a setting turned off, is
// raised or resolved now. The spike baselines, a week of minute rows, are
// Learn's. On an error the detector goes on with what it could read.
func (d *Detector) Load(ctx context.Context) error {
	now := d.cfg.Now()
	var errs []error
	resolvedSince := now
	if d.spikes != nil {
		resolvedSince = now.Add(-d.spikes.cfg.Cooldown)
	}
	saved, err := d.cfg.Store.Alerts(ctx, resolvedSince)
	if err != nil {
		errs = append(errs, err)
	}

	d.mu.Lock()
	d.loadedAt = now
	if d.quotas != nil {
		period := d.quotas.cfg.Billing.Period(now)
		top, err := d.cfg.Store.TopClients(ctx, store.Query{Since: period.Start}, -1, nil)
		errs = append(errs, err)
		d.quotas.begin(now, top.Rest)
	}
	var out []Alert
	for _, s := range saved {
		var a Alert
		if err := json.Unmarshal(s.Payload, &a); err != nil || a.ID != s.ID || a.details() != 1 {
			d.cfg.Log.Warn("skip an unreadable alert in the database", "alert", s.ID, "err", err)
			continue
		}
		out = append(out, d.restore(a, now)...)
	}
	if d.quotas != nil {
		d.quotas.check(now)
	}
	out = append(out, d.take()...)
	d.mu.Unlock()

	d.publish(ctx, now, out)
	errs = append(errs, d.cfg.Store.ForgetAlerts(ctx, now.Add(-keepResolved)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("load alert state: %w", err)
	}
	return nil
}

// Learn reads the consensus traffic of the last Spike.Days days before
// Load into the spike baselines, then judges the periods consumed
// meanwhile and every one after: until it has, no spike is judged, so
// none fires from a baseline half learned. It holds up neither Consume nor
// Active, and takes a second or more on a busy week of history, so the
// daemon calls it once it is ready. It says in the journal when spikes
// are judged from. On an error the baselines hold what could be read.
// It learns the usual ratio of the divergence alert the same way.
//
// What the run before counted in the minute Load was called in is left
// out of the baselines: the database cannot tell it from this run's
// periods, which Consume counts.
func (d *Detector) Learn(ctx context.Context) error {
	d.mu.Lock()
	now := d.loadedAt
	d.mu.Unlock()
	return errors.Join(d.learnSpikes(ctx, now), d.learnDivergence(ctx, now))
}

// learnSpikes is Learn's part for the spikes.
func (d *Detector) learnSpikes(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	off := d.spikes == nil || d.learned
	d.mu.Unlock()
	if off {
		return nil
	}
	began := time.Now()
	s := newSpikes(d.cfg.Spike)
	cut := now.Truncate(s.cfg.Step)
	since := time.Unix(hourOf(now)*3600, 0).AddDate(0, 0, -s.cfg.Days)
	err := d.cfg.Store.ClassMinutes(ctx, traffic.Consensus, since, func(m store.ClassMinute) error {
		if m.Minute.Before(cut) {
			s.add(m.Minute, m.Client, m.Bytes)
		}
		return nil
	})
	s.closeBefore(cut)
	hours := 0
	for _, h := range s.observed {
		if h >= 0 {
			hours++
		}
	}

	d.mu.Lock()
	for _, a := range d.restored {
		s.restore(a, now)
	}
	s.judging = true
	for _, p := range d.pending {
		s.consume(p)
	}
	d.spikes, d.learned, d.pending, d.restored = s, true, nil, nil
	out := d.take()
	clients := len(s.clients)
	d.mu.Unlock()

	d.cfg.Log.Info("consensus spike baselines learned; judging spikes from now on", "hours", hours, "clients", clients,
		"days_needed", min(minHistoryDays, s.cfg.Days), "took", time.Since(began).Round(time.Millisecond))
	if len(out) > 0 {
		d.publish(ctx, d.cfg.Now(), out)
	}
	if err != nil {
		return fmt.Errorf("learn consensus spike baselines: %w", err)
	}
	return nil
}

// consensusOf returns p with only the rows that moved consensus traffic:
// all that spikes reads of a period, kept while Learn reads the history.
func consensusOf(p traffic.Period) traffic.Period {
	rows := p.Rows
	p.Rows = nil
	for _, r := range rows {
		if r.Traffic[traffic.Consensus][traffic.Up].Bytes+r.Traffic[traffic.Consensus][traffic.Down].Bytes > 0 {
			p.Rows = append(p.Rows, r)
		}
	}
	p.Proven = nil
	return p
}

// restore takes up a saved alert, and returns what has to be resolved
// now: an alert of a kind or quota no longer set. d.mu must be held.
func (d *Detector) restore(a Alert, now time.Time) []Alert {
	switch {
	case a.Spike != nil && d.spikes != nil:
		d.spikes.restore(a, now)
		if !d.learned {
			d.restored = append(d.restored, a)
		}
	case a.Quota != nil && d.quotas != nil && d.quotaSet(a.Subject) && (a.Kind != QuotaProjection || d.quotas.cfg.OnProjection):
		if a.Status == Firing {
			d.quotas.restore(a)
		}
	case a.Divergence != nil && d.divergence != nil:
		d.divergence.restore(a)
	case a.Status == Firing:
		a.Status, a.ResolvedAt = Resolved, now
		return []Alert{a}
	}
	return nil
}

// quotaSet reports whether the quota of direction is set.
func (d *Detector) quotaSet(direction string) bool {
	for _, u := range d.quotas.cfg.Uses(&traffic.Traffic{}) {
		if u.Direction == direction {
			return true
		}
	}
	return false
}

// take returns the alerts raised since the last call. d.mu must be held.
func (d *Detector) take() []Alert {
	var out []Alert
	if d.spikes != nil {
		out = append(out, d.spikes.take()...)
	}
	if d.quotas != nil {
		out = append(out, d.quotas.take()...)
	}
	if d.divergence != nil {
		out = append(out, d.divergence.take()...)
	}
	return out
}

// Consume judges a closed period. It only reads p's rows, never fails,
// and takes no longer than a save of the alerts raised, if any.
func (d *Detector) Consume(ctx context.Context, p traffic.Period) error {
	d.mu.Lock()
	switch {
	case d.spikes != nil && d.learned:
		d.spikes.consume(p)
	case d.spikes != nil:
		d.pending = append(d.pending, consensusOf(p))
	}
	if d.quotas != nil {
		d.quotas.consume(p)
	}
	if d.divergence != nil {
		d.divergence.consume(p)
	}
	out := d.take()
	d.mu.Unlock()
	if len(out) > 0 || len(d.unsaved) > 0 {
		d.publish(ctx, p.End, out)
	}
	return nil
}

// publish writes alerts to the journal, saves them, and notifies them.
// Only the one goroutine that loads and consumes calls it.
func (d *Detector) publish(ctx context.Context, now time.Time, alerts []Alert) {
	for _, a := range alerts {
		logAlert(d.cfg.Log, a)
	}
	d.save(ctx, now, alerts)
	if d.cfg.Notify != nil {
		for _, a := range alerts {
			d.cfg.Notify.Notify(a)
		}
	}
}

// save saves alerts, after those whose save failed before, and keeps
// what fails for the next try.
func (d *Detector) save(ctx context.Context, now time.Time, alerts []Alert) {
	for _, a := range alerts {
		// A resolution replaces the firing of the same alert.
		d.unsaved = slices.DeleteFunc(d.unsaved, func(u Alert) bool { return u.ID == a.ID })
		d.unsaved = append(d.unsaved, a)
	}
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	var err error
	resolved := false
	for len(d.unsaved) > 0 {
		a := d.unsaved[0]
		if err = d.cfg.Store.SaveAlert(ctx, saved(a)); err != nil {
			break
		}
		resolved = resolved || a.Status == Resolved
		d.unsaved = d.unsaved[1:]
	}
	if err == nil && resolved {
		err = d.cfg.Store.ForgetAlerts(ctx, now.Add(-keepResolved))
	}
	d.saving.Update(ctx, d.cfg.Log, now, err, "unsaved", len(d.unsaved))
}

// saved returns a as the database keeps it.
func saved(a Alert) store.SavedAlert {
	payload, _ := json.Marshal(a) // no value of an Alert fails
	return store.SavedAlert{ID: a.ID, Kind: string(a.Kind), Subject: a.Subject, Started: a.StartedAt,
		Resolved: a.ResolvedAt, Payload: payload}
}

// Active returns the alerts firing, oldest first.
func (d *Detector) Active() []Alert {
	d.mu.Lock()
	var out []Alert
	if d.spikes != nil {
		out = append(out, d.spikes.active()...)
	}
	if d.quotas != nil {
		out = append(out, d.quotas.active()...)
	}
	if d.divergence != nil {
		out = append(out, d.divergence.active()...)
	}
	d.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Alert) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), strings.Compare(string(a.Kind), string(b.Kind)), strings.Compare(a.Subject, b.Subject))
	})
	return out
}

// QuotaUse returns how much of each quota set the billing period has used
// so far, and its projection to the period's end; none without a quota.
func (d *Detector) QuotaUse() []QuotaUse {
	if d.quotas == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.quotas
	return q.cfg.UsesAt(&q.used, q.period, q.at)
}
