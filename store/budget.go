package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/back2basic/collector/internal/foldlog"
	"github.com/back2basic/collector/traffic"
)

// The rollups keep a row budget as the flushes do (agg's MaxClientRows):
// at most Options.MaxClientRows client rows per hour in traffic_hourly and
// per day in traffic_daily, beside 'other'. Past it the clients proven
// real in that hour or day keep their rows first, then the busiest by
// bytes, and the rest are summed into the 'other' row of the same time, so
// totals stay exact and a flood of ever-new forged sources adds at most
// that many rows an hour and a day to the tables kept longest.
//
// Which clients were proven is kept in a side table of its own, proven, a
// row per client and hour in which a flush handed it as proven (Period.
// Proven). The traffic tables keep their columns, so the copy to
// PostgreSQL, which copies rows as written, rollups included, is exact
// without it. Its rows are deleted once their day is rolled up.
//
// Rows that come for an hour or a day already rolled up (the clock set
// back) are added to the rollups as they are, each client to its own row:
// rows held back while the file could not be written are not late (no
// hour is rolled up past them), and the clock set back brings at most a
// flush's budget of them each time.

// createProvenSQL makes the table of the hours in which a client proved it
// is real. The key is by address first: the rollups ask, per client,
// whether it has a row in an hour or a day.
const createProvenSQL = `CREATE TABLE proven (
	ip TEXT NOT NULL,
	timestamp INTEGER NOT NULL,
	PRIMARY KEY (ip, timestamp)
) WITHOUT ROWID`

// addProven gives a version 5 file the proven table.
func addProven(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx, createProvenSQL)
}

// saveProven records the hours in which the clients of proven had rows.
func saveProven(ctx context.Context, tx *sql.Tx, rows []keyedRow, proven []traffic.Client) error {
	if len(proven) == 0 {
		return nil
	}
	isProven := make(map[string]bool, len(proven))
	for _, c := range proven {
		isProven[c.String()] = true
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT OR IGNORE INTO proven (ip, timestamp) VALUES (?, ?)")
	if err != nil {
		return fmt.Errorf("prepare saving proven clients: %w", err)
	}
	defer stmt.Close()
	for _, r := range rows {
		if !isProven[r.ip] {
			continue
		}
		if _, err := stmt.ExecContext(ctx, r.ip, floorTo(r.at, Hours.step())); err != nil {
			return fmt.Errorf("save proven client %s: %w", r.ip, err)
		}
	}
	return nil
}

// pruneProven deletes the proven hours of days rolled up: no rollup asks
// about them again.
func pruneProven(ctx context.Context, tx *sql.Tx, dailyUntil int64) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM proven WHERE timestamp < ?", dailyUntil); err != nil {
		return fmt.Errorf("delete proven clients before %d: %w", dailyUntil, err)
	}
	return nil
}

// Folds is what the row budget of a rollup table has summed into 'other'
// since the Store was opened.
type Folds struct {
	// Rows counts the client rows summed into 'other', Bytes the bytes
	// they held.
	Rows, Bytes uint64
}

// foldCounter is a Folds updated by the writer and read by scrapes.
type foldCounter struct {
	rows, bytes atomic.Uint64
}

func (f *foldCounter) add(rows int, bytes uint64) {
	f.rows.Add(uint64(rows))
	f.bytes.Add(bytes)
}

func (f *foldCounter) read() Folds {
	return Folds{Rows: f.rows.Load(), Bytes: f.bytes.Load()}
}

// RollupFolds returns what the row budgets of the hourly and the daily
// rollups summed into 'other' so far.
func (s *Store) RollupFolds() (hourly, daily Folds) {
	return s.folds[Hours].total.read(), s.folds[Days].total.read()
}

// rankedSQL is the rows of t's finer table whose time is in [?1, ?2),
// summed into a row per client and period of t (columns at, ip, the
// counters, bytes), each with its rank among the clients of its period:
// proven ones first, then by bytes, then by address. 'other' is in a rank
// of its own, 1.
func rankedSQL(t Table) string {
	step := t.step()
	var bytes []string
	for _, c := range columns {
		if !c.packets {
			bytes = append(bytes, c.name)
		}
	}
	return fmt.Sprintf(`SELECT at, ip, %[1]s, bytes,
	ROW_NUMBER() OVER (PARTITION BY at, ip = 'other' ORDER BY
		EXISTS (SELECT 1 FROM proven AS p WHERE p.ip = s.ip AND p.timestamp >= s.at AND p.timestamp < s.at + %[2]d) DESC,
		bytes DESC, ip) AS rank
FROM (
	SELECT timestamp - timestamp %% %[2]d AS at, ip, %[3]s, SUM(%[4]s) AS bytes
	FROM %[5]s WHERE timestamp >= ?1 AND timestamp < ?2
	GROUP BY at, ip
) AS s`,
		columnList("%s", ", "), step, columnList("SUM(%s) AS %s", ", "), strings.Join(bytes, " + "), t-1)
}

// rollupBudgetSQL is rollupSQL keeping at most ?3 client rows per period
// of t, the rest summed into 'other'.
func rollupBudgetSQL(t Table) string {
	return fmt.Sprintf(`INSERT INTO %s (timestamp, ip, %s)
SELECT at, CASE WHEN ip = 'other' OR rank <= ?3 THEN ip ELSE 'other' END AS kept, %s
FROM (%s)
WHERE true
GROUP BY at, kept
ON CONFLICT (timestamp, ip) DO UPDATE SET
	%s`,
		t, columnList("%s", ", "), columnList("SUM(%s)", ", "), rankedSQL(t),
		columnList("%s = %s + excluded.%s", ",\n\t"))
}

// foldedSQL counts the client rows and bytes rollupBudgetSQL sums into
// 'other'.
func foldedSQL(t Table) string {
	return fmt.Sprintf("SELECT count(*), coalesce(SUM(bytes), 0) FROM (%s) WHERE ip != 'other' AND rank > ?3", rankedSQL(t))
}

// folded is what one rollup summed into 'other'; ran says it rolled
// anything up at all.
type folded struct {
	ran   bool
	rows  int
	bytes uint64
}

// rollupRange sums the rows of t's finer table whose time is in [start,
// stop) into t as write seq, within the row budget when there is one.
func (s *Store) rollupRange(ctx context.Context, tx *sql.Tx, t Table, start, stop, seq int64) (folded, error) {
	f := folded{ran: true}
	if budget := s.opts.MaxClientRows; budget <= 0 {
		if _, err := tx.ExecContext(ctx, rollupSQL(t), start, stop); err != nil {
			return f, err
		}
	} else {
		if err := tx.QueryRowContext(ctx, foldedSQL(t), start, stop, budget).Scan(&f.rows, &f.bytes); err != nil {
			return f, fmt.Errorf("count clients past the row budget: %w", err)
		}
		if _, err := tx.ExecContext(ctx, rollupBudgetSQL(t), start, stop, budget); err != nil {
			return f, err
		}
	}
	return f, logRollup(ctx, tx, t, seq, start, stop)
}

// rollupFolds is what the row budget of one rollup table folded: counted
// for /metrics, logged once per run of rollups that fold.
type rollupFolds struct {
	total   foldCounter
	episode foldlog.Episode
}

func newRollupFolds(t Table) rollupFolds {
	span := map[Table]string{Hours: "an hour", Days: "a day"}[t]
	return rollupFolds{episode: foldlog.Episode{
		Start: "more clients in " + span + " than MAX_CLIENT_ROWS: " + t.String() + " keeps proven clients' rows first, then the busiest; the rest are summed into 'other'",
		End:   "every client has a row of its own in " + t.String() + " again",
	}}
}

// record counts and logs what one rollup folded at now.
func (r *rollupFolds) record(log *slog.Logger, now time.Time, f folded) {
	if !f.ran {
		return
	}
	r.total.add(f.rows, f.bytes)
	r.episode.Update(log, now, f.rows, f.bytes)
}
