package store

import (
	"fmt"
	"strings"

	"github.com/back2basic/collector/traffic"
)

// schemaVersion is stored in PRAGMA user_version; migrate brings a file of
// any earlier version up to it.
const schemaVersion = 10

// column is one counter column of the traffic tables.
type column struct {
	name    string
	class   traffic.Class
	dir     traffic.Direction
	packets bool
}

// tally points at the counter of t that the column stores, so one accessor
// serves both writing rows and scanning sums.
func (c column) tally(t *traffic.Traffic) *uint64 {
	if c.packets {
		return &t[c.class][c.dir].Packets
	}
	return &t[c.class][c.dir].Bytes
}

// columns lists the counter columns in table order: the earlier tool's byte
// columns first (consensus_up, consensus_down, siamux_up, ...), then the same
// names with a _packets suffix. Every statement is built from it, so a name
// is spelled in one place only.
var columns = counterColumns()

func counterColumns() []column {
	var cols []column
	for _, packets := range []bool{false, true} {
		for c := range traffic.NumClasses {
			for d := range traffic.NumDirections {
				name := c.String() + "_" + d.String()
				if packets {
					name += "_packets"
				}
				cols = append(cols, column{name: name, class: c, dir: d, packets: packets})
			}
		}
	}
	return cols
}

// CounterNames returns the names of the counter columns of the traffic
// tables, in table order: consensus_up, consensus_down, ..., then the same
// with _packets. Reports and exports use them as their column names too.
func CounterNames() []string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	return names
}

// Counters returns the counters of t in the order of CounterNames.
func Counters(t *traffic.Traffic) []uint64 {
	values := make([]uint64, len(columns))
	for i, c := range columns {
		values[i] = *c.tally(t)
	}
	return values
}

// TrafficOf returns the Traffic whose Counters are values.
func TrafficOf(values []uint64) traffic.Traffic {
	var t traffic.Traffic
	for i, c := range columns {
		*c.tally(&t) = values[i]
	}
	return t
}

// columnList returns one copy of format per counter column, with every %s in
// it replaced by the column's name, joined by sep.
func columnList(format, sep string) string {
	parts := make([]string, len(columns))
	for i, c := range columns {
		parts[i] = strings.ReplaceAll(format, "%s", c.name)
	}
	return strings.Join(parts, sep)
}

// Table is one of the three tables holding traffic, a row per client and
// minute, hour or day. Rollups fill the coarser ones from the finer ones;
// retention empties the finer ones first.
type Table int

// The tables, finest first.
const (
	Minutes Table = iota // traffic_minute, read through the view traffic
	Hours                // traffic_hourly
	Days                 // traffic_daily
)

// String returns the table's SQL name.
func (t Table) String() string {
	return [...]string{"traffic_minute", "traffic_hourly", "traffic_daily"}[t]
}

// step is the span of one row of t in seconds; every timestamp in t is a
// multiple of it (UTC hours and days: offsets of local zones change, and
// reads in any zone cut the span up from these).
func (t Table) step() int64 {
	return [...]int64{60, 3600, 86400}[t]
}

// createTableSQL creates one traffic table. It is WITHOUT ROWID because its
// primary key is the only way rows are found: the rows live in the key's
// b-tree instead of a second one.
func createTableSQL(t Table) string {
	return `CREATE TABLE ` + t.String() + ` (
	timestamp INTEGER NOT NULL,
	ip TEXT NOT NULL,
	` + columnList("%s INTEGER NOT NULL DEFAULT 0", ",\n\t") + `,
	PRIMARY KEY (timestamp, ip)
) WITHOUT ROWID`
}

// Names live once per address in names, not on every minute row as the
// earlier tool wrote them: a name is about 30 bytes, repeated on 288,000 rows
// a day at 200 clients. The view traffic puts the column dns back where users'
// queries expect it. The price is that dns shows an address's latest name on
// its old rows too, and the view cannot be written to (only agg writes, to
// traffic_minute). Filling the column at write time instead would keep both
// but repeat every name, and a name found after a row was stored would mean
// rewriting rows.
const createNamesSQL = `CREATE TABLE names (
	ip TEXT PRIMARY KEY,
	dns TEXT NOT NULL,
	updated INTEGER NOT NULL
) WITHOUT ROWID`

// createViewSQL keeps the earlier tool's table, columns and meaning: one row
// per minute and client.
var createViewSQL = `CREATE VIEW traffic AS
SELECT m.timestamp AS timestamp, m.ip AS ip, coalesce(n.dns, '') AS dns,
	` + columnList("m.%s AS %s", ",\n\t") + `
FROM traffic_minute AS m LEFT JOIN names AS n ON n.ip = m.ip`

// rollup_state has one row saying how far rollups and retention have gone,
// so readers in other processes know which table answers for which time:
// every hour before hourly_until is summed into traffic_hourly, every day
// before daily_until into traffic_daily; minute rows before minute_since and
// hourly rows before hourly_since have been deleted.
const createStateSQL = `CREATE TABLE rollup_state (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	hourly_until INTEGER NOT NULL,
	daily_until INTEGER NOT NULL,
	minute_since INTEGER NOT NULL,
	hourly_since INTEGER NOT NULL
);
INSERT INTO rollup_state VALUES (1, 0, 0, 0, 0)`

// schemaSQL creates the current schema in an empty file.
func schemaSQL() []string {
	return []string{createTableSQL(Minutes), createTableSQL(Hours), createTableSQL(Days), createNamesSQL, createViewSQL, createStateSQL}
}

// upsertSQL adds rows of counters to the stored rows of the same time and
// client in t: several flushes in one minute, or a restart within it, must
// sum. It takes n rows of 2+len(columns) values each, since one statement
// for many rows costs far less per row than a statement each.
func upsertSQL(t Table, n int) string {
	row := "(?, ?" + strings.Repeat(", ?", len(columns)) + ")"
	return fmt.Sprintf("INSERT INTO %s (timestamp, ip, %s)\nVALUES %s\nON CONFLICT (timestamp, ip) DO UPDATE SET\n\t%s",
		t, columnList("%s", ", "), strings.TrimSuffix(strings.Repeat(row+", ", n), ", "),
		columnList("%s = %s + excluded.%s", ",\n\t"))
}

// rollupSQL sums the rows of t's finer table whose time is in [?1, ?2) into
// t, a row per client and period of t. Adding to rows already there keeps
// it exact should a period be rolled up twice in parts.
func rollupSQL(t Table) string {
	step := t.step()
	return fmt.Sprintf(`INSERT INTO %s (timestamp, ip, %s)
SELECT timestamp - timestamp %% %d, ip, %s
FROM %s WHERE timestamp >= ?1 AND timestamp < ?2
GROUP BY timestamp - timestamp %% %d, ip
ON CONFLICT (timestamp, ip) DO UPDATE SET
	%s`,
		t, columnList("%s", ", "), step, columnList("SUM(%s)", ", "), t-1, step,
		columnList("%s = %s + excluded.%s", ",\n\t"))
}

// upsertNameSQL stores the latest name of an address.
const upsertNameSQL = `INSERT INTO names (ip, dns, updated) VALUES (?, ?, ?)
ON CONFLICT (ip) DO UPDATE SET dns = excluded.dns, updated = excluded.updated`
