package live

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
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
	day       time.Time // local midnight of the day held
	clients   map[netip.Addr]*bpfgo.Traffic
	other     bpfgo.Traffic // the 'other' row
	untracked bpfgo.Traffic // clients past max, summed
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
	d.clients = make(map[netip.Addr]*bpfgo.Traffic)
	d.other, d.untracked = bpfgo.Traffic{}, bpfgo.Traffic{}
}

// TopClients is what Load reads; *agg.Store has it.
type TopClients interface {
	TopClients(ctx context.Context, q agg.Query, n int, classes []bpfgo.Class) (agg.Top, error)
}

// Load reads what the database holds for today, the busiest max clients
// and the rest summed, with the sums and the cut done in SQL. It must run
// before the first flush that Stored hears of, or that flush is counted
// twice.
func (d *Today) Load(ctx context.Context, st TopClients) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	day := midnight(d.now())
	top, err := st.TopClients(ctx, agg.Query{Since: day, Until: day.AddDate(0, 0, 1)}, d.max, nil)
	if err != nil {
		return err
	}
	d.reset(day)
	for _, c := range top.Clients {
		if c.Overflow {
			d.other.Add(&c.Traffic)
			continue
		}
		t := c.Traffic
		d.clients[c.Client] = &t
	}
	d.untracked = top.Rest
	return nil
}

// Stored adds the rows of a flush; rows of another day than today are
// left out. It is agg.Config.Stored.
func (d *Today) Stored(rows []agg.Row) {
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
		case r.Overflow:
			d.other.Add(&r.Traffic)
		case t != nil:
			t.Add(&r.Traffic)
		case len(d.clients) < d.max:
			t := r.Traffic
			d.clients[r.Client] = &t
		default:
			d.untracked.Add(&r.Traffic)
		}
	}
}

// samples returns today's totals as samples: a client each, 'other' as
// the overflow entry, and the clients past max summed.
func (d *Today) samples() (clients []bpfgo.Sample, untracked bpfgo.Traffic) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if day := midnight(d.now()); !day.Equal(d.day) {
		d.reset(day)
	}
	clients = make([]bpfgo.Sample, 0, len(d.clients)+1)
	for addr, t := range d.clients {
		clients = append(clients, bpfgo.Sample{Client: addr, Traffic: *t})
	}
	if !d.other.IsZero() {
		clients = append(clients, bpfgo.Sample{Overflow: true, Traffic: d.other})
	}
	return clients, d.untracked
}
