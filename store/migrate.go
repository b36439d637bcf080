package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// migrations[v] upgrades a file from schema version v to v+1, inside the
// transaction that also sets the new version, so a failed upgrade leaves the
// file as it was. Each step is written against the schema it starts from and
// must never change once released: files of every earlier version are out
// there.
var migrations = []func(ctx context.Context, tx *sql.Tx) error{
	0: importEarlierTool,
	1: splitNamesAndAddRollups,
	2: addAlerts,
	3: addWriteSeq,
	4: addSyncState,
	5: addProven,
	6: moveSeqsToWriteLog,
	7: addEgressSlots,
	8: addPeers,
	9: addHostd,
}

// migrate creates the schema in a new file or upgrades an existing one to
// schemaVersion, logging to log when there is work to do.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed
	version, err := userVersion(ctx, tx)
	if err != nil {
		return err
	}
	switch {
	case version == schemaVersion:
		return nil
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this collector's (%d)", version, schemaVersion)
	}
	fresh, err := isEmpty(ctx, tx)
	if err != nil {
		return err
	}
	start := time.Now()
	if fresh {
		if err := execAll(ctx, tx, slices.Concat(schemaSQL(), []string{createAlertsSQL}, writeSeqTablesSQL, writeLogSQL, []string{syncStateSQL, createProvenSQL, createEgressSQL}, createPeersSQL(), hostdTablesSQL())...); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	} else {
		log.Info("upgrading database schema; this can take a while on a large file", "from", version, "to", schemaVersion)
		for v := version; v < schemaVersion; v++ {
			if err := migrations[v](ctx, tx); err != nil {
				return fmt.Errorf("upgrade schema from version %d to %d: %w", v, v+1, err)
			}
		}
	}
	// PRAGMA takes no bound parameters.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if !fresh {
		log.Info("database schema upgraded", "version", schemaVersion, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer for reading.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func userVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// isEmpty reports whether the file has no table yet.
func isEmpty(ctx context.Context, q querier) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return false, fmt.Errorf("read schema: %w", err)
	}
	return n == 0, nil
}

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// earlierNames are the names older builds of the earlier tool gave the byte
// columns, before they were named after the classes.
var earlierNames = map[string]string{
	"consensus_up": "up_9981", "consensus_down": "down_9981",
	"siamux_up": "up_9984_tcp", "siamux_down": "down_9984_tcp",
	"quic_up": "up_9984_udp", "quic_down": "down_9984_udp",
}

// importEarlierTool turns the earlier tool's table (user_version 0: a row per
// insert with an id, the host's own name, nullable byte columns and no key)
// into version 1's: a row per minute and client, summed where the earlier
// tool wrote one twice (a restart within a minute), packet columns zero since
// it did not count packets. Its id and hostname columns go: the first is a
// row counter, the second the same name of this host on every row.
func importEarlierTool(ctx context.Context, tx *sql.Tx) error {
	have, err := tableColumns(ctx, tx, "traffic")
	if err != nil {
		return err
	}
	for _, required := range []string{"timestamp", "ip"} {
		if !have[required] {
			return fmt.Errorf("table traffic has no column %s: not written by an earlier collector", required)
		}
	}
	dns := "''"
	if have["dns"] {
		dns = "max(coalesce(dns, ''))"
	}
	sums := make([]string, len(columns))
	for i, c := range columns {
		switch {
		case have[c.name]:
			sums[i] = "SUM(coalesce(" + c.name + ", 0))"
		case have[earlierNames[c.name]]:
			sums[i] = "SUM(coalesce(" + earlierNames[c.name] + ", 0))"
		case c.packets:
			sums[i] = "0"
		default:
			return fmt.Errorf("table traffic has no column %s: not written by an earlier collector", c.name)
		}
	}
	return execAll(ctx, tx,
		"ALTER TABLE traffic RENAME TO traffic_v0",
		v1TableSQL,
		fmt.Sprintf(`INSERT INTO traffic (timestamp, ip, dns, %s)
SELECT timestamp - timestamp %% 60, ip, %s, %s FROM traffic_v0
GROUP BY timestamp - timestamp %% 60, ip`, columnList("%s", ", "), dns, strings.Join(sums, ", ")),
		"DROP TABLE traffic_v0")
}

// v1TableSQL is version 1's one table: a row per minute and client with the
// name on every row. The counter columns have not changed since.
var v1TableSQL = `CREATE TABLE traffic (
	timestamp INTEGER NOT NULL,
	ip TEXT NOT NULL,
	dns TEXT NOT NULL DEFAULT '',
	` + columnList("%s INTEGER NOT NULL DEFAULT 0", ",\n\t") + `,
	PRIMARY KEY (timestamp, ip)
) WITHOUT ROWID`

// splitNamesAndAddRollups moves version 1's minute rows to traffic_minute,
// keeps each address's latest name once in names (an address whose name
// changed over its history keeps the newest), and adds the rollup tables and
// the view traffic in the table's place.
func splitNamesAndAddRollups(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx,
		"ALTER TABLE traffic RENAME TO traffic_minute",
		createNamesSQL,
		// With MAX, SQLite takes the bare column dns from the row holding
		// the maximum: the latest name.
		`INSERT INTO names (ip, dns, updated)
SELECT ip, dns, MAX(timestamp) FROM traffic_minute WHERE dns != '' GROUP BY ip`,
		"ALTER TABLE traffic_minute DROP COLUMN dns",
		createTableSQL(Hours), createTableSQL(Days), createViewSQL, createStateSQL)
}

// tableColumns returns the set of column names of table.
func tableColumns(ctx context.Context, q querier, table string) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	have := make(map[string]bool)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		have[strings.ToLower(name)] = true
	}
	return have, rows.Err()
}
