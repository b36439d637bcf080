package alert

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/traffic"
)

// DefaultThresholds are the shares of a quota that alert by default.
var DefaultThresholds = []float64{0.8, 1}

// Quota sets what the host may move in a billing period, every class
// counted, and the shares of it that alert.
type Quota struct {
	// Up, Down and Total are quotas in bytes per billing period: of what
	// leaves the host, of what reaches it, and of both. 0 sets none.
	Up, Down, Total uint64
	// Thresholds are the shares of a quota that alert, once each per
	// period; default DefaultThresholds.
	Thresholds []float64
	// Billing is the billing calendar the quotas count by (BILLING_DAY
	// in the operator's zone). Required when a quota is set.
	Billing billing.Cycle
	// OnProjection alerts on the thresholds crossed by the period's
	// projection to its end (billing.Period.Project) too, once each per
	// period, from billing.ProjectionSettles into it
	// (QUOTA_ON_PROJECTION).
	OnProjection bool
}

// QuotaUse is how much of one quota a billing period used.
type QuotaUse struct {
	// Direction is "up", "down" or "total".
	Direction   string
	Used, Limit uint64
	// Projected is what the billing period will have used by its end at
	// its rate so far (billing.Period.Project); 0 when not projected.
	Projected uint64
}

// ProjectedShare returns Projected / Limit.
func (u QuotaUse) ProjectedShare() float64 {
	return float64(u.Projected) / float64(u.Limit)
}

// Share returns Used / Limit.
func (u QuotaUse) Share() float64 {
	return float64(u.Used) / float64(u.Limit)
}

// Set reports whether q has any quota.
func (q Quota) Set() bool {
	return q.Up > 0 || q.Down > 0 || q.Total > 0
}

// Uses returns how much of each quota set t uses, in the order up, down,
// total: what a report of a billing period shows beside its totals.
func (q Quota) Uses(t *traffic.Traffic) []QuotaUse {
	var up, down uint64
	for c := range t {
		up += t[c][traffic.Up].Bytes
		down += t[c][traffic.Down].Bytes
	}
	var out []QuotaUse
	for _, u := range []QuotaUse{{Direction: "up", Used: up, Limit: q.Up}, {Direction: "down", Used: down, Limit: q.Down}, {Direction: "total", Used: up + down, Limit: q.Total}} {
		if u.Limit > 0 {
			out = append(out, u)
		}
	}
	return out
}

// UsesAt returns Uses with each quota's projection to the end of p, of
// which t is what was used up to at.
func (q Quota) UsesAt(t *traffic.Traffic, p billing.Period, at time.Time) []QuotaUse {
	uses := q.Uses(t)
	for i := range uses {
		uses[i].Projected = p.Project(uses[i].Used, at)
	}
	return uses
}

func (q Quota) withDefaults() (Quota, error) {
	if !q.Set() {
		return q, nil
	}
	if q.Billing.IsZero() {
		return q, errors.New("quota: no billing period")
	}
	if len(q.Thresholds) == 0 {
		q.Thresholds = DefaultThresholds
	}
	for _, t := range q.Thresholds {
		if !(t > 0 && t <= 10) {
			return q, fmt.Errorf("quota threshold %v: accepted: a share above 0, such as 0.8 for 80%%, at most 10", t)
		}
	}
	q.Thresholds = slices.Compact(slices.Sorted(slices.Values(q.Thresholds)))
	return q, nil
}

// quotas follows the billing period's use of the quotas. It does no I/O:
// the alerts it raises wait in out for the Detector.
type quotas struct {
	cfg    Quota
	period billing.Period // zero before begin
	used   traffic.Traffic
	at     time.Time         // what used was used up to
	firing map[string]*Alert // by ID: this period's thresholds crossed
	out    []Alert
}

func newQuotas(cfg Quota) *quotas {
	return &quotas{cfg: cfg, firing: make(map[string]*Alert)}
}

// begin starts the period holding t with used already used, resolving the
// alerts of the period before.
func (q *quotas) begin(t time.Time, used traffic.Traffic) {
	for _, a := range q.active() {
		a.Status, a.ResolvedAt = Resolved, q.period.End
		for _, u := range q.cfg.Uses(&q.used) {
			if u.Direction == a.Subject {
				a.Quota.Used, a.Quota.Share = u.Used, u.Share()
				if a.Kind == QuotaProjection {
					// Over, the period's projection is what it used.
					a.Quota.Projected = u.Used
				}
			}
		}
		q.out = append(q.out, a)
	}
	clear(q.firing)
	q.period = q.cfg.Billing.Period(t)
	q.used, q.at = used, t
}

// consume counts the rows of a closed period in the billing period they
// belong to, fires the thresholds crossed, and begins the next billing
// period once the closed one reaches it.
func (q *quotas) consume(p traffic.Period) {
	if !p.Start.Before(q.period.End) {
		q.begin(p.Start, traffic.Traffic{})
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		if q.period.Contains(r.Start) {
			q.used.Add(&r.Traffic)
		}
	}
	q.check(p.End)
	if !p.End.Before(q.period.End) {
		q.begin(p.End, traffic.Traffic{})
	}
}

// check fires every threshold crossed at t, by what was used or, with
// OnProjection once the projection has settled, by what the period is
// projected to use, that has not fired this period.
func (q *quotas) check(t time.Time) {
	q.at = t
	projecting := q.cfg.OnProjection && t.Sub(q.period.Start) >= billing.ProjectionSettles
	for _, u := range q.cfg.UsesAt(&q.used, q.period, t) {
		for _, th := range q.cfg.Thresholds {
			q.fire(t, QuotaThreshold, u, th, u.Share())
			if projecting {
				q.fire(t, QuotaProjection, u, th, u.ProjectedShare())
			}
		}
	}
}

// fire raises the alert of kind on threshold th of u's quota, at share,
// unless share is below th or it fired this period.
func (q *quotas) fire(t time.Time, kind Kind, u QuotaUse, th, share float64) {
	id := quotaID(kind, u.Direction, q.period.Start, th)
	if _, fired := q.firing[id]; fired || share < th {
		return
	}
	a := Alert{
		ID: id, Status: Firing, Kind: kind, Subject: u.Direction, StartedAt: t,
		Quota: &QuotaDetails{Threshold: th, Quota: u.Limit, Used: u.Used, Share: share,
			PeriodStart: q.period.Start, PeriodEnd: q.period.End},
	}
	if kind == QuotaProjection {
		a.Quota.Projected = u.Projected
	}
	q.firing[id] = &a
	q.out = append(q.out, a.clone())
}

// restore takes up an alert that was firing before a restart: one of this
// period stays firing, one of a period over resolves as that period ended.
func (q *quotas) restore(a Alert) {
	if a.Quota.PeriodStart.Equal(q.period.Start) {
		q.firing[a.ID] = &a
		return
	}
	a.Status, a.ResolvedAt = Resolved, a.Quota.PeriodEnd
	q.out = append(q.out, a)
}

// active returns the alerts of this period, oldest first.
func (q *quotas) active() []Alert {
	out := make([]Alert, 0, len(q.firing))
	for _, a := range q.firing {
		out = append(out, a.clone())
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), strings.Compare(a.Subject, b.Subject), cmp.Compare(a.Quota.Threshold, b.Quota.Threshold))
	})
	return out
}

// take returns the alerts raised since the last call.
func (q *quotas) take() []Alert {
	out := q.out
	q.out = nil
	return out
}
