package store

import (
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/traffic"
)

// The history the rollup and query tests share, in the test's own time
// line after day0.
var (
	historyEnd    = at(5, 20, 0) // the last rows are filed before it
	historyClosed = at(5, 18, 0) // rolled up to here
	historyKeep   = Retention{Minutes: 2 * 24 * time.Hour, Hourly: 4 * 24 * time.Hour}
	// What maintain must leave: rolled up to the closed hour and its day,
	// minute rows kept from two days before historyEnd's hour, hourly
	// rows from the day minute rows start in, bounded by four days.
	historyHorizons = horizons{
		hourlyUntil: at(5, 18, 0),
		dailyUntil:  at(5, 0, 0),
		minuteSince: at(3, 20, 0),
		hourlySince: at(1, 0, 0),
	}
	// lateMinute is written after its hour and day were rolled up and its
	// minute rows deleted.
	lateMinute = at(2, 10, 3)
)

// buildHistory writes six days of traffic of a few clients the way
// Consume does: a write, then maintain, every six hours, and rows for
// times already rolled up now and then. It returns every minute row
// written.
func buildHistory(t testing.TB, st *Store) map[rowKey]traffic.Traffic {
	t.Helper()
	clients := []traffic.Client{oldA, oldB, traffic.Other, clientOf("198.51.100.7")}
	truth := make(map[rowKey]traffic.Traffic)
	record := func(batch map[rowKey]traffic.Traffic) {
		t.Helper()
		write(t, st, batch)
		for k, tr := range batch {
			sum := truth[k]
			sum.Add(&tr)
			truth[k] = sum
		}
	}
	const block = 6 * 3600
	seed := uint64(0)
	for start := at(0, 0, 0); start < historyEnd; start += block {
		batch := make(map[rowKey]traffic.Traffic)
		for m := start; m < min(start+block, historyEnd); m += 60 {
			for i, c := range clients {
				// Each client has its own rhythm, with gaps.
				if (m/60)%int64(i+2) == 0 {
					seed++
					batch[rowKey{m, c}] = dbtest.Seeded(seed % 1000)
				}
			}
		}
		record(batch)
		if start == at(1, 0, 0) {
			// A drain that failed for a while: its rows come late.
			record(map[rowKey]traffic.Traffic{{at(0, 5, 17), oldB}: dbtest.Seeded(7)})
		}
		end := min(start+block, historyEnd)
		if err := st.maintain(t.Context(), time.Unix(min(end, historyClosed), 0), time.Unix(end, 0), historyKeep, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	record(map[rowKey]traffic.Traffic{{lateMinute, oldA}: dbtest.Seeded(9)})
	return truth
}

// groupBy sums the rows of truth whose time is in [from, to) into rows of
// table t.
func groupBy(truth map[rowKey]traffic.Traffic, t Table, from, to int64) map[rowKey]traffic.Traffic {
	out := make(map[rowKey]traffic.Traffic)
	for k, tr := range truth {
		if k.start < from || k.start >= to {
			continue
		}
		k.start = floorTo(k.start, t.step())
		sum := out[k]
		sum.Add(&tr)
		out[k] = sum
	}
	return out
}

func TestRollupExact(t *testing.T) {
	st := openStore(t)
	truth := buildHistory(t, st)
	h := historyHorizons
	if st.state != h {
		t.Fatalf("rollup state %+v, want %+v", st.state, h)
	}
	checkTable(t, st, Days, groupBy(truth, Days, 0, h.dailyUntil))
	checkTable(t, st, Hours, groupBy(truth, Hours, h.hourlySince, h.hourlyUntil))
	minutes := readRows(t, st, Minutes)
	for k := range minutes {
		if k.start < h.minuteSince && k.start != lateMinute {
			t.Errorf("minute row %s at %s outlived retention", k.client, show(k.start))
		}
		delete(minutes, rowKey{lateMinute, k.client})
	}
	if want := groupBy(truth, Minutes, h.minuteSince, noEnd); len(minutes) != len(want) {
		t.Errorf("%d minute rows kept, want %d", len(minutes), len(want))
	}

	// What every byte adds up to: days rolled up, then hours, then
	// minutes.
	var got, want traffic.Traffic
	for _, part := range []map[rowKey]traffic.Traffic{
		readRows(t, st, Days),
		groupBy(readRows(t, st, Hours), Hours, h.dailyUntil, h.hourlyUntil),
		groupBy(readRows(t, st, Minutes), Minutes, h.hourlyUntil, noEnd),
	} {
		for _, tr := range part {
			got.Add(&tr)
		}
	}
	for _, tr := range truth {
		want.Add(&tr)
	}
	if got != want {
		t.Errorf("the tables sum to %+v, the rows written to %+v", got, want)
	}

	// The state is in the file, for readers and the next start.
	st.Close()
	if again := openPath(t, st.path); again.state != h {
		t.Errorf("reopened with rollup state %+v, want %+v", again.state, h)
	}
}

// A long history is rolled up a chunk at a time, each chunk its own
// transaction, and gaps cost nothing.
func TestRollupInChunks(t *testing.T) {
	st := openStore(t)
	batch := make(map[rowKey]traffic.Traffic)
	for m := at(0, 0, 0); m < at(3, 0, 0); m += 600 {
		batch[rowKey{m, oldA}] = dbtest.Seeded(uint64(m % 97))
	}
	// Far later, after a long gap.
	batch[rowKey{at(200, 0, 0), oldA}] = dbtest.Seeded(1)
	write(t, st, batch)
	closed, now := time.Unix(at(200, 1, 0), 0), time.Unix(at(200, 1, 0), 0)
	keep := Retention{Minutes: 1000 * 24 * time.Hour, Hourly: 1000 * 24 * time.Hour}
	calls := 0
	for prev := (horizons{}); calls == 0 || st.state != prev; calls++ {
		prev = st.state
		if err := st.maintain(t.Context(), closed, now, keep, 0); err != nil {
			t.Fatal(err)
		}
		if calls > 20 {
			t.Fatal("maintain does not converge")
		}
	}
	// A day of hours per chunk: three days and the hour after the gap,
	// then one call to see there is nothing left.
	t.Logf("caught up in %d calls", calls)
	if calls < 4 || calls > 6 {
		t.Errorf("caught up in %d calls, want about 4", calls)
	}
	if got := st.state; got.hourlyUntil != at(200, 1, 0) || got.dailyUntil != at(200, 0, 0) {
		t.Errorf("rolled up to %s (days to %s), want d200 01:00 (d200 00:00)", show(got.hourlyUntil), show(got.dailyUntil))
	}
	checkTable(t, st, Days, groupBy(batch, Days, 0, at(200, 0, 0)))
}
