package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Every transaction that inserts or updates traffic rows (a flush with its
// late rows, a chunk of rollups) takes the next number of write_seq, its
// seq, and records in write_log which times of which table it touched: a
// row per table and time, holding the seq of the last write there. Rows
// change after they are first written (late traffic added to a minute,
// rollups adding to an hour), so a copy of the tables elsewhere learns
// what it lacks from the seqs, not from the times: the rows of every time
// written after the last row it took, ordered by the time's seq, then time
// and address. sync_cursor keeps that last row per copy and table.
// Deleting rows takes no number: a copy keeps the history that retention
// drops.
//
// Until schema 7 each row carried its own seq, with an index on it: a
// third of a year's file. A time's seq is coarser, so a write that adds to
// one row of a time has a copy take the time's other rows again, with the
// values it already holds; late rows are few, and a copy sets what it
// takes rather than adding it, so it stays exact.

// writeSeqTablesSQL creates the write counter and the copies' cursors.
var writeSeqTablesSQL = []string{
	`CREATE TABLE write_seq (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
)`,
	"INSERT INTO write_seq VALUES (1, 1)",
	`CREATE TABLE sync_cursor (
	target TEXT NOT NULL,
	tbl TEXT NOT NULL,
	seq INTEGER NOT NULL,
	timestamp INTEGER NOT NULL,
	ip TEXT NOT NULL,
	PRIMARY KEY (target, tbl)
) WITHOUT ROWID`,
}

// writeLogSQL creates write_log. Writes find a time by its key; copies read
// on in the order of the index.
var writeLogSQL = []string{
	`CREATE TABLE write_log (
	tbl TEXT NOT NULL,
	timestamp INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY (tbl, timestamp)
) WITHOUT ROWID`,
	"CREATE UNIQUE INDEX write_log_order ON write_log (tbl, seq, timestamp)",
}

// addWriteSeq gives a version 3 file the seqs as schema 4 kept them, on
// every row; the rows of the file get seq 1, as if written by one first
// write, without rewriting them.
func addWriteSeq(ctx context.Context, tx *sql.Tx) error {
	stmts := slices.Clone(writeSeqTablesSQL)
	for _, t := range []Table{Minutes, Hours, Days} {
		stmts = append(stmts,
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN seq INTEGER NOT NULL DEFAULT 1", t),
			fmt.Sprintf("CREATE INDEX %[1]s_seq ON %[1]s (seq)", t))
	}
	return execAll(ctx, tx, stmts...)
}

// moveSeqsToWriteLog turns a version 6 file's seq on every row into
// write_log: each time gets the last seq of its rows, so a copy's cursor
// still has behind it every row it had (see the top of this file for the
// rows of its time it takes again), and the column and its index go.
// Dropping the column rewrites each table once.
func moveSeqsToWriteLog(ctx context.Context, tx *sql.Tx) error {
	stmts := slices.Clone(writeLogSQL)
	for _, t := range []Table{Minutes, Hours, Days} {
		stmts = append(stmts,
			fmt.Sprintf("INSERT INTO write_log (tbl, timestamp, seq) SELECT '%[1]s', timestamp, MAX(seq) FROM %[1]s GROUP BY timestamp", t),
			fmt.Sprintf("DROP INDEX %s_seq", t),
			fmt.Sprintf("ALTER TABLE %s DROP COLUMN seq", t))
	}
	return execAll(ctx, tx, stmts...)
}

// logWrite records that write seq touched the rows of table t at the
// times ats, which are in ascending order and may repeat.
func logWrite(ctx context.Context, tx *sql.Tx, t Table, seq int64, ats []int64) error {
	if len(ats) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, logWriteSQL)
	if err != nil {
		return fmt.Errorf("record the write to %s: %w", t, err)
	}
	defer stmt.Close()
	for i, at := range ats {
		if i > 0 && at == ats[i-1] {
			continue
		}
		if _, err := stmt.ExecContext(ctx, t.String(), at, seq); err != nil {
			return fmt.Errorf("record the write to %s at %d: %w", t, at, err)
		}
	}
	return nil
}

const logWriteSQL = `INSERT INTO write_log (tbl, timestamp, seq) VALUES (?, ?, ?)
ON CONFLICT (tbl, timestamp) DO UPDATE SET seq = excluded.seq`

// logRollup records that write seq, a rollup, touched the rows of t in
// [start, stop). Taking the times from t rather than from what was summed
// may add a time that had rows before and none to add; a copy then takes
// its rows once more, unchanged.
func logRollup(ctx context.Context, tx *sql.Tx, t Table, seq, start, stop int64) error {
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO write_log (tbl, timestamp, seq)
SELECT DISTINCT ?1, timestamp, ?2 FROM %s WHERE timestamp >= ?3 AND timestamp < ?4
ON CONFLICT (tbl, timestamp) DO UPDATE SET seq = excluded.seq`, t), t.String(), seq, start, stop)
	if err != nil {
		return fmt.Errorf("record the rollup into %s: %w", t, err)
	}
	return nil
}

// inWrite runs fn in a write transaction numbered seq (nextSeq) and
// commits it when fn succeeds.
func (s *Store) inWrite(ctx context.Context, fn func(tx *sql.Tx, seq int64) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed
	seq, err := nextSeq(ctx, tx)
	if err != nil {
		return err
	}
	if err := fn(tx, seq); err != nil {
		return err
	}
	return tx.Commit()
}

// nextSeq takes the number of a new write.
func nextSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	if err := tx.QueryRowContext(ctx, "UPDATE write_seq SET seq = seq + 1 RETURNING seq").Scan(&seq); err != nil {
		return 0, fmt.Errorf("number the write: %w", err)
	}
	return seq, nil
}

// Mark is a place in the order rows were written: by the seq of their
// time's last write, then by time and address. The zero Mark is before
// every row.
type Mark struct {
	seq, at int64
	ip      string
}

// changedSQL selects the rows of a table written after a Mark, joined as r
// with their time's write_log row as w, from the arguments of Mark.after.
// The condition on w alone lets SQLite start from the Mark in
// write_log_order.
const changedSQL = `FROM write_log AS w JOIN %s AS r ON r.timestamp = w.timestamp
WHERE w.tbl = ? AND (w.seq, w.timestamp) >= (?, ?) AND (w.seq, w.timestamp, r.ip) > (?, ?, ?)`

// after returns the arguments of changedSQL for the rows of t after m.
func (m Mark) after(t Table) []any {
	return []any{t.String(), m.seq, m.at, m.seq, m.at, m.ip}
}

// ChangeBatch is a part of the rows written after a Mark, as Changes reads
// them.
type ChangeBatch struct {
	// Rows are in the order they were written.
	Rows []traffic.Row
	// Next is where to read on from: every row of the table's window
	// written up to it is in Rows or was before.
	Next Mark
	// Since is where the table's window starts: retention has deleted the
	// rows before it, and a row written there since holds only the traffic
	// that came late, its whole counted in the coarser tables. The zero
	// time for the daily table, whose rows are kept forever.
	Since time.Time
	// Done reports whether no row was written after Next.
	Done bool
}

// windowStart returns where table t's window starts, in unix seconds: the
// first time of the rows retention keeps whole.
func (h horizons) windowStart(t Table) int64 {
	switch t {
	case Minutes:
		return h.minuteSince
	case Hours:
		return h.hourlySince
	}
	return math.MinInt64
}

// Changes reads the rows of table t last written after from, in the order
// written, at most limit of them, from one snapshot: rows written while it
// reads come with a later call. Rows outside the table's window are left
// out (see ChangeBatch.Since) but counted in Next.
func (s *Store) Changes(ctx context.Context, t Table, from Mark, limit int) (ChangeBatch, error) {
	b := ChangeBatch{Next: from}
	scanned := 0
	err := s.read(ctx, func(tx *sql.Tx, h horizons) error {
		since := h.windowStart(t)
		if t != Days {
			b.Since = time.Unix(since, 0)
		}
		query := fmt.Sprintf("SELECT w.seq, r.timestamp, r.ip, %s "+changedSQL+" ORDER BY w.seq, w.timestamp, r.ip LIMIT ?", columnList("r.%s", ", "), t)
		var m Mark
		return scanTraffic(ctx, tx, query, append(from.after(t), limit), []any{&m.seq, &m.at, &m.ip}, func(tr *traffic.Traffic) error {
			scanned++
			b.Next = m
			if m.at < since {
				return nil
			}
			client, err := traffic.ParseClient(m.ip)
			if err != nil {
				return err
			}
			b.Rows = append(b.Rows, traffic.Row{Start: time.Unix(m.at, 0), Client: client, Traffic: *tr})
			return nil
		})
	})
	if err != nil {
		return ChangeBatch{}, fmt.Errorf("read rows of %s written after seq %d from %s: %w", t, from.seq, s.path, err)
	}
	b.Done = scanned < limit
	return b, nil
}

// Pending counts the rows of table t's window last written after from:
// what Changes has yet to return.
func (s *Store) Pending(ctx context.Context, t Table, from Mark) (int, error) {
	var n int
	err := s.read(ctx, func(tx *sql.Tx, h horizons) error {
		return tx.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) "+changedSQL+" AND w.timestamp >= ?", t), append(from.after(t), h.windowStart(t))...).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count rows of %s written after seq %d in %s: %w", t, from.seq, s.path, err)
	}
	return n, nil
}

// SyncCursor returns how far the rows of table t have been copied to
// target, a name the copier chooses: the copy holds every row as last
// written up to that Mark. It is the zero Mark for a target never copied
// to.
func (s *Store) SyncCursor(ctx context.Context, target string, t Table) (Mark, error) {
	var m Mark
	err := s.db.QueryRowContext(ctx, "SELECT seq, timestamp, ip FROM sync_cursor WHERE target = ? AND tbl = ?", target, t.String()).Scan(&m.seq, &m.at, &m.ip)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Mark{}, nil
	case err != nil:
		return Mark{}, fmt.Errorf("read sync cursor of %s from %s: %w", t, s.path, err)
	}
	return m, nil
}

// SaveSyncCursor moves the cursor of table t at target from from, where
// the copier read its rows, to to, where the copy now holds them. It does
// not when the cursor is no longer at from: another copier moved it on,
// or ResetSyncCursors moved it back, and either way this copier's view is
// out of date.
func (s *Store) SaveSyncCursor(ctx context.Context, target string, t Table, from, to Mark) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sync_cursor (target, tbl, seq, timestamp, ip) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (target, tbl) DO UPDATE SET seq = excluded.seq, timestamp = excluded.timestamp, ip = excluded.ip
WHERE (sync_cursor.seq, sync_cursor.timestamp, sync_cursor.ip) = (?, ?, ?)`,
		target, t.String(), to.seq, to.at, to.ip, from.seq, from.at, from.ip)
	if err != nil {
		return fmt.Errorf("save sync cursor of %s in %s: %w", t, s.path, err)
	}
	return nil
}
