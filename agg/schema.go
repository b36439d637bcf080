package agg

import (
	"fmt"
	"strings"

	"github.com/back2basic/collector/bpfgo"
)

// schemaVersion is stored in PRAGMA user_version when the table is created,
// so that later versions can tell which migrations a file needs.
const schemaVersion = 1

// overflowIP is the ip column value of the entry that takes the clients the
// kernel map had no room for.
const overflowIP = "other"

// column is one counter column of the traffic table.
type column struct {
	name    string
	class   bpfgo.Class
	dir     bpfgo.Direction
	packets bool
}

// tally points at the counter of t that the column stores, so one accessor
// serves both writing rows and scanning sums.
func (c column) tally(t *bpfgo.Traffic) *uint64 {
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
		for c := range bpfgo.NumClasses {
			for d := range bpfgo.NumDirections {
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

// columnList returns one copy of format per counter column, with every %s in
// it replaced by the column's name, joined by sep.
func columnList(format, sep string) string {
	parts := make([]string, len(columns))
	for i, c := range columns {
		parts[i] = strings.ReplaceAll(format, "%s", c.name)
	}
	return strings.Join(parts, sep)
}

// The table is WITHOUT ROWID because its primary key is the only way rows are
// found: the rows live in the key's b-tree instead of a second one.
var createTableSQL = `CREATE TABLE traffic (
	timestamp INTEGER NOT NULL,
	ip TEXT NOT NULL,
	dns TEXT NOT NULL DEFAULT '',
	` + columnList("%s INTEGER NOT NULL DEFAULT 0", ",\n\t") + `,
	PRIMARY KEY (timestamp, ip)
) WITHOUT ROWID`

// upsertSQL adds a row's counters to the stored row of the same minute and
// client: several flushes in one minute, or a restart within it, must sum.
// A name replaces an empty one but an empty one never erases a name.
var upsertSQL = fmt.Sprintf(`INSERT INTO traffic (timestamp, ip, dns, %s)
VALUES (?, ?, ?%s)
ON CONFLICT (timestamp, ip) DO UPDATE SET
	dns = CASE WHEN excluded.dns = '' THEN dns ELSE excluded.dns END,
	%s`,
	columnList("%s", ", "),
	strings.Repeat(", ?", len(columns)),
	columnList("%s = %s + excluded.%s", ",\n\t"))

// fillNameSQL names the rows stored without a name. The timestamp bound keeps
// it on a range of the primary key instead of a scan of the whole table.
const fillNameSQL = `UPDATE traffic SET dns = ? WHERE timestamp >= ? AND ip = ? AND dns = ''`

// totalsSQL sums each client's rows from a minute on, busiest first.
var totalsSQL = fmt.Sprintf(`SELECT ip, MAX(dns), %s
FROM traffic WHERE timestamp >= ?
GROUP BY ip
ORDER BY SUM(%s) DESC, ip`,
	columnList("SUM(%s)", ", "),
	byteColumnSum())

// byteColumnSum returns the expression adding up a row's byte columns.
func byteColumnSum() string {
	var names []string
	for _, c := range columns {
		if !c.packets {
			names = append(names, c.name)
		}
	}
	return strings.Join(names, " + ")
}
