package agg

import (
	"cmp"
	"maps"
	"slices"

	"github.com/back2basic/collector/bpfgo"
)

// DefaultMaxPending is the default of Config.MaxPending. A pending row takes
// about 160 bytes, so the default holds some 32 MB: 16 hours of minute rows
// at 200 clients before any merging, and far longer after.
const DefaultMaxPending = 200_000

// bound keeps the rows waiting for the database within MaxPending, warning
// once as they pass 80% of it. Past it, rows are merged: each client's
// minutes into its hour, then into its day, then the smallest clients of a
// day into that day's 'other' entry, until they fit. Every byte and packet
// is kept, and rollups stay exact at the resolution that is left; what goes
// is when within the hour or day, and who, and each merge is logged as an
// error saying how much. a.mu must be held.
func (a *Aggregator) bound() {
	limit, n := a.cfg.MaxPending, len(a.pending)
	if !a.nearCap && n >= limit/10*8 {
		a.nearCap = true
		a.cfg.Log.Warn("traffic waiting for the database nears the cap; past it, rows will be merged", "rows", n, "max_rows", limit)
	}
	if n <= limit {
		return
	}
	for _, to := range []struct {
		table Table
		name  string
	}{{Hours, "hour"}, {Days, "day"}} {
		regroup(a.pending, func(k rowKey) rowKey {
			k.minute = floorTo(k.minute, to.table.step())
			return k
		})
		if len(a.pending) <= limit {
			a.cfg.Log.Error("too much traffic waiting for the database; merged each client's rows into one per "+to.name,
				"rows_before", n, "rows_after", len(a.pending), "max_rows", limit)
			return
		}
	}
	rows, bytes := a.foldSmallest(limit)
	a.cfg.Log.Error("too much traffic waiting for the database; merged each client's rows into one per day and the smallest clients into 'other'",
		"client_days", rows, "bytes", bytes, "rows_before", n, "rows_after", len(a.pending), "max_rows", limit)
}

// regroup moves every row of rows to key(k), summing the rows that meet.
func regroup(rows map[rowKey]*bpfgo.Traffic, key func(rowKey) rowKey) {
	for _, k := range slices.Collect(maps.Keys(rows)) {
		if to := key(k); to != k {
			t := rows[k]
			delete(rows, k)
			add(rows, to, t)
		}
	}
}

// foldSmallest merges client rows into the overflow entry of the same time,
// smallest first, until at most limit rows are left or none but overflow
// entries, and returns how many rows and bytes it moved. a.mu must be held.
func (a *Aggregator) foldSmallest(limit int) (rows int, bytes uint64) {
	var keys []rowKey
	for k := range a.pending {
		if k.client.IsValid() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y rowKey) int {
		return cmp.Or(cmp.Compare(a.pending[x].Bytes(), a.pending[y].Bytes()), cmp.Compare(x.minute, y.minute), x.client.Compare(y.client))
	})
	for _, k := range keys {
		if len(a.pending) <= limit {
			break
		}
		t := a.pending[k]
		delete(a.pending, k)
		add(a.pending, rowKey{minute: k.minute}, t)
		rows++
		bytes += t.Bytes()
	}
	return rows, bytes
}
