package pgsync

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/store"
)

// A month of a thousand hosts' hourly rows is 144 million rows: too many
// to sum while someone waits. The sync therefore keeps, beside
// traffic_hourly, its sums by host, UTC day and client
// (traffic_hourly_by_day) and by host, UTC month and client
// (traffic_hourly_by_month), so that a month's top renters across the
// fleet read one row per host and renter. Each hourly batch sets, in its
// own transaction, the sums of the days and months it touches to the
// sums of the rows now there, computed again from them: never added to,
// so that a batch sent twice leaves them as once, as the rows themselves.

// rollups are the sums of traffic_hourly the sync keeps, finest first:
// each is summed from the one before, traffic_hourly first.
var rollups = []struct{ table, unit string }{
	{"traffic_hourly_by_day", "day"},
	{"traffic_hourly_by_month", "month"},
}

// createRollupsSQL creates the rollup tables and fills them from the rows
// already there.
func createRollupsSQL() []string {
	var stmts []string
	from := store.Hours.String()
	for _, r := range rollups {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS, PRIMARY KEY (host, timestamp, ip))", r.table, from),
			fmt.Sprintf("CREATE INDEX %[1]s_timestamp ON %[1]s (timestamp)", r.table),
			fmt.Sprintf("INSERT INTO %s (%s)\nSELECT host, date_trunc('%s', timestamp, 'UTC'), ip, %s FROM %s GROUP BY 1, 2, 3",
				r.table, strings.Join(centralColumns, ", "), r.unit, sums(), from))
		from = r.table
	}
	return stmts
}

// sums sums each counter, in the order of centralColumns.
func sums() string {
	parts := make([]string, len(store.CounterNames()))
	for i, name := range store.CounterNames() {
		parts[i] = "sum(" + name + ")"
	}
	return strings.Join(parts, ", ")
}

// rollupSQL sets the sums in table of the host's units (day or month)
// and clients the staged rows touch to those of the rows of from, the
// table below it. It reads only the host's rows of the span the staged
// rows cover.
func rollupSQL(table, unit, from string) string {
	set := make([]string, len(store.CounterNames()))
	for i, name := range store.CounterNames() {
		set[i] = name + " = EXCLUDED." + name
	}
	unitOf := func(col string) string { return fmt.Sprintf("date_trunc('%s', %s, 'UTC')", unit, col) }
	return fmt.Sprintf(`WITH touched AS (
	SELECT DISTINCT %[3]s AS unit, ip FROM %[4]s
), span AS (
	SELECT min(unit) AS first, max(unit) + interval '1 %[2]s' AS last FROM touched
)
INSERT INTO %[1]s (%[5]s)
SELECT f.host, %[6]s, f.ip, %[7]s
FROM %[8]s f, span
WHERE f.host = $1 AND f.timestamp >= span.first AND f.timestamp < span.last
	AND (%[6]s, f.ip) IN (SELECT unit, ip FROM touched)
GROUP BY 1, 2, 3
ON CONFLICT (host, timestamp, ip) DO UPDATE SET
	%[9]s`,
		table, unit, unitOf("timestamp"), stageTable, strings.Join(centralColumns, ", "),
		unitOf("f.timestamp"), sums(), from, strings.Join(set, ",\n\t"))
}

// rollUp sets the sums of the days and months the staged hourly rows
// touch, in tx.
func (s *Syncer) rollUp(ctx context.Context, tx pgx.Tx) error {
	from := store.Hours.String()
	for _, r := range rollups {
		if _, err := tx.Exec(ctx, rollupSQL(r.table, r.unit, from), s.host); err != nil {
			return fmt.Errorf("sum %s into %s: %w", from, r.table, err)
		}
		from = r.table
	}
	return nil
}
