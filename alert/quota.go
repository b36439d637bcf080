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
}

// QuotaUse is how much of one quota a billing period used.
type QuotaUse struct {
	// Direction is "up", "down" or "total".
	Direction   string
	Used, Limit uint64
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
	for _, u := range []QuotaUse{{"up", up, q.Up}, {"down", down, q.Down}, {"total", up + down, q.Total}} {
		if u.Limit > 0 {
			out = append(out, u)
		}
	}
	return out
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
			}
		}
		q.out = append(q.out, a)
	}
	clear(q.firing)
	q.period = q.cfg.Billing.Period(t)
	q.used = used
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

// check fires every threshold crossed at t that has not fired this period.
func (q *quotas) check(t time.Time) {
	for _, u := range q.cfg.Uses(&q.used) {
		for _, th := range q.cfg.Thresholds {
			id := quotaID(u.Direction, q.period.Start, th)
			if _, fired := q.firing[id]; fired || u.Share() < th {
				continue
			}
			a := Alert{
				ID: id, Status: Firing, Kind: QuotaThreshold, Subject: u.Direction, StartedAt: t,
				Quota: &QuotaDetails{Threshold: th, Quota: u.Limit, Used: u.Used, Share: u.Share(),
					PeriodStart: q.period.Start, PeriodEnd: q.period.End},
			}
			q.firing[id] = &a
			q.out = append(q.out, a.clone())
		}
	}
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
