package pgsync

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// stageTable is where a batch is copied before it is merged into its
// table: COPY cannot upsert, and one COPY carries a batch far faster than
// statements do. It lives in the batch's transaction.
const stageTable = "sync_rows"

// centralColumns are the columns of the central traffic tables, in order.
var centralColumns = append([]string{"host", "timestamp", "ip"}, store.CounterNames()...)

// mergeSQL merges the staged rows into table t, setting the counters of
// rows already there to the local values: never adding, so that a batch
// sent twice lands once.
func mergeSQL(t store.Table) string {
	set := make([]string, len(store.CounterNames()))
	for i, name := range store.CounterNames() {
		set[i] = name + " = EXCLUDED." + name
	}
	cols := strings.Join(centralColumns, ", ")
	return fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s FROM %s\nON CONFLICT (host, timestamp, ip) DO UPDATE SET\n\t%s",
		t, cols, cols, stageTable, strings.Join(set, ",\n\t"))
}

// sendBatch sends the next batch of table t's rows written since its
// cursor, in one central transaction, then moves the cursor past them. It
// returns how many rows it sent and whether none is left. The cursor and
// the rows are read under the host's lock, so that two syncs of one host
// cannot send an older batch after a newer one. Sending a batch again, as
// after a crash before the cursor moved, sets the same values. The batch
// is refused when another machine claims the host's id, and fails when
// the central database has lost rows the cursor says it has (checkCentral
// then resets the cursor on the next sync).
func (s *Syncer) sendBatch(ctx context.Context, t store.Table) (sent int, done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback(ctx) // a no-op once committed
	if err := s.lockHost(ctx, tx); err != nil {
		return 0, false, err
	}
	if err := s.checkClaim(ctx, tx); err != nil {
		return 0, false, err
	}
	from, err := s.store.SyncCursor(ctx, s.target, t)
	if err != nil {
		return 0, false, err
	}
	upTo, err := s.sentUpTo(ctx, tx, t)
	if err != nil {
		return 0, false, err
	}
	if upTo.Compare(from) < 0 {
		return 0, false, fmt.Errorf("%s holds %s of host %s up to %s, short of the sync cursor's %s: %w", s.where(), t, s.host, upTo, from, errCentralBehind)
	}
	b, err := s.store.Changes(ctx, t, from, s.cfg.BatchRows)
	if err != nil {
		return 0, false, err
	}
	if days := s.missingDays(t, b.Rows); len(days) > 0 {
		// Made outside this transaction: making a partition locks
		// the whole table until the transaction ends.
		return 0, false, &needPartitions{table: t, days: days}
	}
	if len(b.Rows) > 0 {
		if err := s.merge(ctx, tx, t, b.Rows); err != nil {
			return 0, false, fmt.Errorf("send %d rows to %s: %w%s", len(b.Rows), t, err, s.partitionHint(err))
		}
	}
	if b.Next.Compare(upTo) > 0 {
		if err := s.saveSentUpTo(ctx, tx, t, b.Next); err != nil {
			return 0, false, err
		}
	}
	if err := s.touchHost(ctx, tx, len(b.Rows) > 0); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("commit %d rows to %s: %w", len(b.Rows), t, err)
	}
	if s.afterCommit != nil {
		if err := s.afterCommit(); err != nil {
			return len(b.Rows), false, err
		}
	}
	if b.Next != from {
		if err := s.store.SaveSyncCursor(ctx, s.target, t, from, b.Next); err != nil {
			return len(b.Rows), false, err
		}
	}
	return len(b.Rows), b.Done, nil
}

// lockHost takes the host's lock for the rest of tx.
func (s *Syncer) lockHost(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", int32(syncLock), s.host); err != nil {
		return fmt.Errorf("lock the host's rows: %w", err)
	}
	return nil
}

// merge copies rows into the staging table and merges them into t.
func (s *Syncer) merge(ctx context.Context, tx pgx.Tx, t store.Table, rows []traffic.Row) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE %s (LIKE %s) ON COMMIT DROP", stageTable, t)); err != nil {
		return fmt.Errorf("create the staging table: %w", err)
	}
	src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := &rows[i]
		values := make([]any, 0, len(centralColumns))
		values = append(values, s.host, r.Start.UTC(), r.Client.String())
		for _, v := range store.Counters(&r.Traffic) {
			// No counter comes near the top bit, which bigint lacks.
			values = append(values, int64(v))
		}
		return values, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, centralColumns, src); err != nil {
		return fmt.Errorf("copy into the staging table: %w", err)
	}
	if _, err := tx.Exec(ctx, mergeSQL(t)); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	if t == store.Hours {
		return s.rollUp(ctx, tx)
	}
	return nil
}
