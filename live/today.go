package live

import (
	"context"
	"sync"
	"time"

	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/traffic"
)

// DefaultTracked is how many clients Today keeps totals of.
const DefaultTracked = 4096

// Today keeps what was stored since local midnight per client, for the
// stored block of the live table: fed by every flush, it answers each
// print from memory in microseconds, where summing a day of rows in SQLite
// takes seconds once a flood of forged addresses has stored a million of
// them. Its memory is bounded: past max clients, a new client's traffic is
// summed into one line of untracked clients, so the totals stay exact.
type Today struct {
	max int
	now func() time.Time

	mu        sync.Mutex
	day       time.Time                           // local midnight of the day held
	clients   map[traffic.Client]*traffic.Traffic // Other among them
	tracked   int                                 // clients but Other
	untracked traffic.Traffic                     // clients past max, summed
}

// NewToday returns an empty Today keeping at most max clients (0 means
// DefaultTracked), whose day follows now (nil means time.Now).
func NewToday(max int, now func() time.Time) *Today {
	if max <= 0 {
		max = DefaultTracked
	}
	if now == nil {
		now = time.Now
	}
	d := &Today{max: max, now: now}
	d.reset(midnight(now()))
	return d
}

func midnight(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
}

// reset empties d for the day starting at day. d.mu must be held.
func (d *Today) reset(day time.Time) {
	d.day = day
	d.clients = make(map[traffic.Client]*traffic.Traffic)
	d.tracked = 0
	d.untracked = traffic.Traffic{}
}

// track starts totals for client at t. d.mu must be held.
func (d *Today) track(client traffic.Client, t traffic.Traffic) {
	d.clients[client] = &t
	if !client.IsOther() {
		d.tracked++
	}
}

// Load reads what the database holds for today as a report by client
// does: the busiest max clients and the rest summed, with the sums and the
// cut done in SQL. It must run before the first period Consume is handed,
// or that period is counted twice.
func (d *Today) Load(ctx context.Context, src report.Source) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	today, err := report.PeriodSpan("today", now, 0)
	if err != nil {
		return err
	}
	res, err := report.Build(ctx, src, report.Request{Span: today, By: report.ByClient, Top: d.max, Now: now})
	if err != nil {
		return err
	}
	d.reset(today.Since)
	for _, r := range res.Rows {
		d.track(r.Client, r.Traffic)
	}
	d.untracked = res.Rest.Traffic
	return nil
}

// String names Today in the journal and the metrics.
func (d *Today) String() string { return "the live table" }

// Consume adds the rows of a closed period; rows of another day than
// today are left out. Other is kept however many clients there are.
func (d *Today) Consume(_ context.Context, p traffic.Period) error {
	rows := p.Rows
	d.mu.Lock()
	defer d.mu.Unlock()
	if day := midnight(d.now()); !day.Equal(d.day) {
		d.reset(day)
	}
	for i := range rows {
		r := &rows[i]
		if !midnight(r.Start.In(d.day.Location())).Equal(d.day) {
			continue
		}
		switch t := d.clients[r.Client]; {
		case t != nil:
			t.Add(&r.Traffic)
		case d.tracked < d.max || r.Client.IsOther():
			d.track(r.Client, r.Traffic)
		default:
			d.untracked.Add(&r.Traffic)
		}
	}
	return nil
}

// samples returns today's totals as samples: a client each, 'other' as
// the overflow entry, and the clients past max summed.
func (d *Today) samples() (clients []traffic.Sample, untracked traffic.Traffic) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if day := midnight(d.now()); !day.Equal(d.day) {
		d.reset(day)
	}
	clients = make([]traffic.Sample, 0, len(d.clients))
	for c, t := range d.clients {
		clients = append(clients, traffic.Sample{Client: c, Traffic: *t})
	}
	return clients, d.untracked
}
