package agg

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/traffic"
)

// DefaultMaxPending is the default of Config.MaxPending. A pending row takes
// about 160 bytes, so the default holds some 32 MB: 16 hours of minute rows
// at 200 clients before any merging, and far longer after.
const DefaultMaxPending = 200_000

// queue is one consumer and the rows it has not taken yet.
type queue struct {
	consumer Consumer
	name     string
	since    time.Time // the start of the oldest period waiting
	pending  map[rowKey]*traffic.Traffic
	proven   map[traffic.Client]bool // proven clients of the rows waiting
	nearCap  bool                    // warned that pending nears MaxPending
	failing  outage.Outage
}

// nameOf names c in the journal and the metrics: its String, or its type
// without one.
func nameOf(c Consumer) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", c)
}

func newQueue(c Consumer) *queue {
	name := nameOf(c)
	return &queue{
		consumer: c,
		name:     name,
		pending:  make(map[rowKey]*traffic.Traffic),
		proven:   make(map[traffic.Client]bool),
		failing: outage.Outage{
			Start: "cannot hand traffic to " + name + "; keeping it in memory and retrying every flush",
			End:   "handing traffic to " + name + " again",
		},
	}
}

// hand gives the consumer p with the rows it did not take before, and
// keeps them all, bounded, when it fails.
func (q *queue) hand(ctx context.Context, p period, cfg Config) error {
	rows, proven, since := p.rows, p.proven, p.start
	if len(q.pending) > 0 {
		q.keep(p)
		rows, proven, since = list(q.pending), slices.Collect(maps.Keys(q.proven)), q.since
	}
	err := q.consumer.Consume(ctx, traffic.Period{Start: since, End: p.end, Rows: rows, Proven: proven})
	q.failing.Update(ctx, cfg.Log, cfg.Now(), err, "rows", len(rows))
	switch {
	case err == nil:
		clear(q.pending)
		clear(q.proven)
		q.nearCap = false
	case len(q.pending) == 0:
		q.since = p.start
		q.keep(p)
		q.bound(cfg)
	default:
		q.bound(cfg)
	}
	return err
}

// keep adds the rows of p to those waiting, and its proven clients to
// theirs: no more than the clients of the rows waiting.
func (q *queue) keep(p period) {
	for i := range p.rows {
		add(q.pending, rowKey{minute: p.rows[i].Start.Unix(), client: p.rows[i].Client}, &p.rows[i].Traffic)
	}
	for _, c := range p.proven {
		q.proven[c] = true
	}
}

// size returns the number of rows waiting and the bytes they count.
func (q *queue) size() (rows int, bytes uint64) {
	for _, t := range q.pending {
		bytes += t.Bytes()
	}
	return len(q.pending), bytes
}

// bound keeps the rows waiting within MaxPending, warning once as they
// pass 80% of it. Past it, rows are merged: each client's minutes into its
// hour, then into its day, then the smallest clients of a day into that
// day's Other row, until they fit. Every byte and packet is kept, and
// rollups stay exact at the resolution that is left; what goes is when
// within the hour or day, and who, and each merge is logged as an error
// saying how much.
func (q *queue) bound(cfg Config) {
	limit, n := cfg.MaxPending, len(q.pending)
	if !q.nearCap && n >= limit/10*8 {
		q.nearCap = true
		cfg.Log.Warn("traffic waiting for "+q.name+" nears the cap; past it, rows will be merged", "rows", n, "max_rows", limit)
	}
	if n <= limit {
		return
	}
	for _, to := range []struct {
		step int64
		name string
	}{{3600, "hour"}, {86400, "day"}} {
		regroup(q.pending, func(k rowKey) rowKey {
			k.minute -= k.minute % to.step
			return k
		})
		if len(q.pending) <= limit {
			cfg.Log.Error("too much traffic waiting for "+q.name+"; merged each client's rows into one per "+to.name,
				"rows_before", n, "rows_after", len(q.pending), "max_rows", limit)
			return
		}
	}
	rows, bytes := q.foldSmallest(limit)
	q.forgetProvenWithoutRows()
	cfg.Log.Error("too much traffic waiting for "+q.name+"; merged each client's rows into one per day and the smallest clients into 'other'",
		"client_days", rows, "bytes", bytes, "rows_before", n, "rows_after", len(q.pending), "max_rows", limit)
}

// regroup moves every row of rows to key(k), summing the rows that meet.
func regroup(rows map[rowKey]*traffic.Traffic, key func(rowKey) rowKey) {
	for _, k := range slices.Collect(maps.Keys(rows)) {
		if to := key(k); to != k {
			t := rows[k]
			delete(rows, k)
			add(rows, to, t)
		}
	}
}

// forgetProvenWithoutRows drops the proven clients none of whose rows
// wait any more, so that they stay as bounded as the rows.
func (q *queue) forgetProvenWithoutRows() {
	waiting := make(map[traffic.Client]bool, len(q.proven))
	for k := range q.pending {
		if q.proven[k.client] {
			waiting[k.client] = true
		}
	}
	q.proven = waiting
}

// foldSmallest merges client rows into the Other row of the same time,
// smallest first, until at most limit rows are left or none but Other
// rows, and returns how many rows and bytes it moved.
func (q *queue) foldSmallest(limit int) (rows int, bytes uint64) {
	var keys []rowKey
	for k := range q.pending {
		if !k.client.IsOther() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y rowKey) int {
		return cmp.Or(cmp.Compare(q.pending[x].Bytes(), q.pending[y].Bytes()), cmp.Compare(x.minute, y.minute), x.client.Compare(y.client))
	})
	for _, k := range keys {
		if len(q.pending) <= limit {
			break
		}
		t := q.pending[k]
		delete(q.pending, k)
		add(q.pending, rowKey{minute: k.minute, client: traffic.Other}, t)
		rows++
		bytes += t.Bytes()
	}
	return rows, bytes
}
