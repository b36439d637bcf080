package store

import (
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/traffic"
)

// TestRollupBudget: with more clients in an hour or a day than
// MaxClientRows, the rollup keeps the rows of the clients proven in it
// first, then of the busiest over the whole hour or day, and sums the rest
// into that hour's or day's 'other' row with the 'other' rows there, so
// every total stays exact. Each run of folding rollups is logged once as
// it starts and ends, and counted in RollupFolds; the proven hours of days
// rolled up are deleted.
func TestRollupBudget(t *testing.T) {
	var logs syncbuf.Buffer
	var now time.Time
	st := openWith(t, filepath.Join(t.TempDir(), "traffic.db"), Options{
		Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }, MaxClientRows: 2,
	})
	a, b, c, d := clientOf("192.0.2.1"), clientOf("192.0.2.2"), clientOf("192.0.2.3"), clientOf("192.0.2.4")
	e, f, g := clientOf("2001:db8::5"), clientOf("2001:db8::6"), clientOf("2001:db8::7")
	consume := func(end int64, proven []traffic.Client, rows map[rowKey]traffic.Traffic) {
		t.Helper()
		now = time.Unix(end, 0)
		if err := st.Consume(t.Context(), traffic.Period{End: now, Rows: rowsOf(rows), Proven: proven}); err != nil {
			t.Fatal(err)
		}
	}
	// dbtest.Seeded(n) moves 6000n+147 bytes.
	consume(at(0, 10, 2), []traffic.Client{a}, map[rowKey]traffic.Traffic{
		{at(0, 10, 0), a}:             dbtest.Seeded(0), // the smallest, but proven
		{at(0, 10, 0), b}:             dbtest.Seeded(5), // the busiest minute, not the busiest hour
		{at(0, 10, 0), c}:             dbtest.Seeded(3),
		{at(0, 10, 1), c}:             dbtest.Seeded(3),
		{at(0, 10, 1), d}:             dbtest.Seeded(1),
		{at(0, 10, 0), traffic.Other}: dbtest.Seeded(1),
	})
	consume(at(0, 11, 1), nil, map[rowKey]traffic.Traffic{
		{at(0, 11, 0), e}: dbtest.Seeded(4),
		{at(0, 11, 0), f}: dbtest.Seeded(2),
		{at(0, 11, 0), g}: dbtest.Seeded(1),
	})
	// Closes day 0: its hours and the day are rolled up.
	consume(at(1, 0, 1), []traffic.Client{a}, map[rowKey]traffic.Traffic{{at(1, 0, 0), a}: dbtest.Seeded(1)})
	checkTable(t, st, Hours, map[rowKey]traffic.Traffic{
		{at(0, 10, 0), a}:             dbtest.Seeded(0),
		{at(0, 10, 0), c}:             dbtest.Sum(3, 3),
		{at(0, 10, 0), traffic.Other}: dbtest.Sum(5, 1, 1),
		{at(0, 11, 0), e}:             dbtest.Seeded(4),
		{at(0, 11, 0), f}:             dbtest.Seeded(2),
		{at(0, 11, 0), traffic.Other}: dbtest.Seeded(1),
	})
	checkTable(t, st, Days, map[rowKey]traffic.Traffic{
		{at(0, 0, 0), a}:             dbtest.Seeded(0),
		{at(0, 0, 0), c}:             dbtest.Sum(3, 3),
		{at(0, 0, 0), traffic.Other}: dbtest.Sum(5, 1, 1, 4, 2, 1),
	})
	bytes := func(seeds ...uint64) uint64 { return dbtest.Sum(seeds...).Bytes() }
	hourly, daily := st.RollupFolds()
	if want := (Folds{Rows: 3, Bytes: bytes(5, 1, 1)}); hourly != want {
		t.Errorf("hourly folds %+v, want %+v", hourly, want)
	}
	if want := (Folds{Rows: 2, Bytes: bytes(4, 2)}); daily != want {
		t.Errorf("daily folds %+v, want %+v", daily, want)
	}
	var proven []string
	err := st.read(t.Context(), func(tx *sql.Tx, _ horizons) error {
		rows, err := tx.QueryContext(t.Context(), "SELECT ip || ' ' || timestamp FROM proven")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			proven = append(proven, s)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("192.0.2.1 %d", at(1, 0, 0)); strings.Join(proven, ",") != want {
		t.Errorf("proven hours %v, want only %s: day 0 is rolled up", proven, want)
	}

	// An hour that fits ends the hourly episode.
	consume(at(1, 1, 1), nil, nil)
	text := logs.String()
	for _, want := range []struct {
		parts []string
		n     int
	}{
		// Hour 10 starts it, hour 11 adds to it.
		{[]string{"level=WARN", "more clients in an hour than MAX_CLIENT_ROWS", "folded_clients=2", "folded_bytes=" + fmt.Sprint(bytes(5, 1))}, 1},
		{[]string{"more clients in an hour"}, 1},
		{[]string{"level=WARN", "more clients in a day than MAX_CLIENT_ROWS", "folded_clients=2", "folded_bytes=" + fmt.Sprint(bytes(4, 2))}, 1},
		{[]string{"every client has a row of its own in traffic_hourly again", "folded_clients=3", "folded_bytes=" + fmt.Sprint(bytes(5, 1, 1))}, 1},
	} {
		n := 0
		for _, line := range strings.Split(text, "\n") {
			if containsAll(line, want.parts) {
				n++
			}
		}
		if n != want.n {
			t.Errorf("%d lines with %q, want %d:\n%s", n, want.parts, want.n, text)
		}
	}
}

// rowsOf is rows, for a nil table too.
func rowsOf(want map[rowKey]traffic.Traffic) []traffic.Row {
	if want == nil {
		return nil
	}
	return rows(want)
}

// containsAll reports whether s contains every one of parts.
func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
