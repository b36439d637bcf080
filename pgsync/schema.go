package pgsync

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/store"
)

// schemaVersion is the version of the central schema this collector
// writes; collector_schema holds the database's. The collector creates and
// upgrades the schema itself and refuses one newer than it knows.
const schemaVersion = 5

// schemaLock is the key of the advisory lock under which collectors
// create or upgrade the schema, so that hosts starting together do it
// once.
const schemaLock = 0x636f6c6c6563746f // "collecto"

// syncLock is the first key of the advisory lock a host's batch holds, the
// second being its id hashed: two syncs of one host (the daemon's and a
// `collector sync -once`) then send their batches one after the other,
// each read after the other's was sent, never an older one last.
const syncLock = 0x636f6c6c // "coll"

// tables are the central tables, by the local table they copy.
var tables = []store.Table{store.Minutes, store.Hours, store.Days}

// migrations[v] upgrades the central schema from version v to v+1. Each
// step is written against the schema it starts from and never changes
// once released.
var migrations = []func() []string{
	0: createTraffic,
	1: addIdentityAndClaims,
	2: partitionByDay,
	3: createRollupsSQL,
	4: createHostd,
}

// createTraffic creates the traffic tables, one per local table, with
// the local columns and the host in the key, and collector_hosts.
func createTraffic() []string {
	var stmts []string
	counters := make([]string, len(store.CounterNames()))
	for i, name := range store.CounterNames() {
		counters[i] = name + " bigint NOT NULL DEFAULT 0"
	}
	for _, t := range tables {
		stmts = append(stmts, fmt.Sprintf(`CREATE TABLE %[1]s (
	host text NOT NULL,
	timestamp timestamptz NOT NULL,
	ip text NOT NULL,
	%[2]s,
	PRIMARY KEY (host, timestamp, ip)
)`, t, strings.Join(counters, ",\n\t")),
			// Fleet-wide reads select by time across hosts.
			fmt.Sprintf("CREATE INDEX %[1]s_timestamp ON %[1]s (timestamp)", t))
	}
	return append(stmts, `CREATE TABLE collector_hosts (
	host text PRIMARY KEY,
	hostname text NOT NULL,
	synced_at timestamptz NOT NULL
)`)
}

// addIdentityAndClaims gives the database an identity, made when its
// schema is, so that a host notices it is another database than the one
// its cursor was made for (dropped and created again); collector_sent,
// how far each host's rows are here, so that a host notices the database
// is behind its cursor (restored from an older dump); and the claim on
// each HOST_ID, so that a second machine with the same id is refused.
func addIdentityAndClaims() []string {
	return []string{
		"ALTER TABLE collector_schema ADD COLUMN central_id uuid NOT NULL DEFAULT gen_random_uuid()",
		`ALTER TABLE collector_hosts
	ADD COLUMN claim text NOT NULL DEFAULT '',
	ADD COLUMN install text NOT NULL DEFAULT '',
	ADD COLUMN address inet`,
		`CREATE TABLE collector_sent (
	host text NOT NULL,
	tbl text NOT NULL,
	up_to text NOT NULL,
	PRIMARY KEY (host, tbl)
)`,
	}
}

// partitionByDay makes the minute and hourly tables partitioned by
// timestamp (partition.go) and adds collector_retention. The rows of an
// existing table stay where they are, untouched: the table becomes the
// first partition, holding every time up to the end of its last row's
// day, and retention drops it once that day is past. Days after it get
// partitions of their own.
func partitionByDay() []string {
	var stmts []string
	for _, t := range partitionedTables {
		stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %[1]s RENAME TO %[1]s_before_partitions;
ALTER INDEX %[1]s_pkey RENAME TO %[1]s_before_partitions_pkey;
ALTER INDEX %[1]s_timestamp RENAME TO %[1]s_before_partitions_timestamp;
CREATE TABLE %[1]s (LIKE %[1]s_before_partitions INCLUDING DEFAULTS, PRIMARY KEY (host, timestamp, ip)) PARTITION BY RANGE (timestamp);
CREATE INDEX %[1]s_timestamp ON %[1]s (timestamp);
DO $$
DECLARE upto timestamptz;
BEGIN
	SELECT date_trunc('day', max(timestamp), 'UTC') + interval '1 day' INTO upto FROM %[1]s_before_partitions;
	IF upto IS NULL THEN
		DROP TABLE %[1]s_before_partitions;
	ELSE
		EXECUTE format('ALTER TABLE %[1]s ATTACH PARTITION %[1]s_before_partitions FOR VALUES FROM (MINVALUE) TO (%%L)', upto);
	END IF;
END $$`, t))
	}
	return append(stmts, `CREATE TABLE collector_retention (
	host text NOT NULL,
	tbl text NOT NULL,
	keep_days int NOT NULL,
	PRIMARY KEY (host, tbl)
)`)
}

// errNewerSchema is a central schema this collector does not know.
var errNewerSchema = errors.New("is newer than this collector's")

// prepareSchema creates or upgrades the central schema.
func prepareSchema(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) // a no-op once committed
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(schemaLock)); err != nil {
		return fmt.Errorf("lock the schema: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('collector_schema') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("look for collector_schema: %w", err)
	}
	version := 0
	if exists {
		if err := tx.QueryRow(ctx, "SELECT version FROM collector_schema").Scan(&version); err != nil {
			return fmt.Errorf("read collector_schema: %w", err)
		}
	}
	switch {
	case version > schemaVersion:
		return fmt.Errorf("central schema version %d %w (%d): upgrade the collector, or sync into another database", version, errNewerSchema, schemaVersion)
	case version == schemaVersion:
		return nil
	case !exists:
		if _, err := tx.Exec(ctx, createSchemaTableSQL); err != nil {
			return fmt.Errorf("create collector_schema: %w", err)
		}
	}
	for v := version; v < schemaVersion; v++ {
		for _, stmt := range migrations[v]() {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("upgrade the central schema from version %d to %d: %w", v, v+1, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE collector_schema SET version = $1", schemaVersion); err != nil {
		return fmt.Errorf("set the central schema version: %w", err)
	}
	return tx.Commit(ctx)
}

// createSchemaTableSQL creates collector_schema at version 0: no tables.
const createSchemaTableSQL = `CREATE TABLE collector_schema (
	id int PRIMARY KEY CHECK (id = 1),
	version int NOT NULL
);
INSERT INTO collector_schema VALUES (1, 0)`
