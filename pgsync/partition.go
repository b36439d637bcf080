package pgsync

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The central minute and hourly tables are range-partitioned by
// timestamp, a partition per UTC day, so that retention drops whole
// partitions instead of deleting rows, and a fleet-wide read of a span
// reads only that span's partitions. The code here knows tables by name
// only: another time-keyed central table is partitioned by creating it
// PARTITION BY RANGE (timestamp) and naming it to these functions.
//
// Many collectors share one database and may create or drop the same
// partition at the same moment: each change to a table's partitions is
// made under an advisory lock of that table, after reading under the
// lock which partitions exist, so that a partition is made once and
// never over another one's range.

// partitionLock is the first key of the advisory lock under which a
// table's partitions are created and dropped, the second being the
// table's name hashed.
const partitionLock = 0x70617274 // "part"

// partitionSpan is the span of one partition.
const partitionSpan = 24 * time.Hour

// partitionsAhead is how many days past today the collector keeps
// partitions made, so that rows of the next days never wait for one.
const partitionsAhead = 7

// PartitionMode says whether the collector manages the partitions of the
// central tables or only uses them (SYNC_POSTGRES_PARTITIONS).
type PartitionMode int

const (
	// ManagePartitions creates partitions ahead and as rows need them,
	// and drops those wholly past the central retention.
	ManagePartitions PartitionMode = iota
	// UsePartitions creates and drops none: the operator does.
	UsePartitions
)

// partition is one partition of a table: rows from From up to To. A nil
// bound is unbounded (MINVALUE, MAXVALUE); the DEFAULT partition has
// neither and isDefault set.
type partition struct {
	name      string
	from, to  *time.Time
	isDefault bool
}

// covers reports whether p holds every row of the day starting at day.
func (p partition) covers(day time.Time) bool {
	return !p.isDefault && (p.from == nil || !p.from.After(day)) && (p.to == nil || !p.to.Before(day.Add(partitionSpan)))
}

// listPartitionsSQL reads the partitions of the table $1 with their
// bounds, as PostgreSQL spells them in FOR VALUES FROM (...) TO (...).
const listPartitionsSQL = `SELECT c.relname,
	(regexp_match(b.bound, 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
	(regexp_match(b.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz,
	b.bound = 'DEFAULT'
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
WHERE i.inhparent = $1::regclass
ORDER BY 2 NULLS FIRST`

// listPartitions returns the partitions of table, oldest first.
func listPartitions(ctx context.Context, tx pgx.Tx, table string) ([]partition, error) {
	rows, err := tx.Query(ctx, listPartitionsSQL, table)
	if err != nil {
		return nil, fmt.Errorf("list the partitions of %s: %w", table, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (partition, error) {
		var p partition
		err := row.Scan(&p.name, &p.from, &p.to, &p.isDefault)
		return p, err
	})
}

// tableLockTimeout bounds the wait of a partition's creation or drop for
// the lock of its whole table: while it waits, behind a long query of
// the table, every other host's rows queue behind it.
const tableLockTimeout = "10s"

// lockPartitions begins a transaction holding table's partition lock.
func lockPartitions(ctx context.Context, conn *pgx.Conn, table string) (pgx.Tx, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2)), set_config('lock_timeout', $3, true)",
		int32(partitionLock), table, tableLockTimeout); err != nil {
		tx.Rollback(ctx)
		return nil, fmt.Errorf("lock the partitions of %s: %w", table, err)
	}
	return tx, nil
}

// partitionName names the partition of table holding the day from day.
func partitionName(table string, day time.Time) string {
	return table + "_" + day.UTC().Format("20060102")
}

// ensurePartitions makes a partition of table for each day (UTC
// midnights) that no partition holds yet. A day that an existing
// partition holds only in part (one the operator made) is left to fail
// the rows' insert, which names it.
func ensurePartitions(ctx context.Context, conn *pgx.Conn, table string, days []time.Time) error {
	tx, err := lockPartitions(ctx, conn, table)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) // a no-op once committed
	parts, err := listPartitions(ctx, tx, table)
	if err != nil {
		return err
	}
	for _, day := range days {
		if slices.ContainsFunc(parts, func(p partition) bool { return p.covers(day) }) {
			continue
		}
		name := partitionName(table, day)
		stmt := fmt.Sprintf("CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{table}.Sanitize(),
			day.UTC().Format(time.RFC3339), day.Add(partitionSpan).UTC().Format(time.RFC3339))
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		from, to := day, day.Add(partitionSpan)
		parts = append(parts, partition{name: name, from: &from, to: &to})
	}
	return tx.Commit(ctx)
}

// dropPartitionsBefore drops the partitions of table that hold only rows
// from before cut, and returns their names.
func dropPartitionsBefore(ctx context.Context, conn *pgx.Conn, table string, cut time.Time) ([]string, error) {
	tx, err := lockPartitions(ctx, conn, table)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) // a no-op once committed
	parts, err := listPartitions(ctx, tx, table)
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, p := range parts {
		if p.isDefault || p.to == nil || p.to.After(cut) {
			continue
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+pgx.Identifier{p.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("drop partition %s: %w", p.name, err)
		}
		dropped = append(dropped, p.name)
	}
	return dropped, tx.Commit(ctx)
}

// dayOf returns the UTC midnight starting t's day.
func dayOf(t time.Time) time.Time {
	return t.UTC().Truncate(partitionSpan)
}
