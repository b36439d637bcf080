package agg

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/back2basic/collector/bpfgo"
	_ "modernc.org/sqlite" // registers the pure Go driver "sqlite"
)

// busyTimeout is how long a statement waits for a lock another connection
// holds (the sqlite3 shell, a backup) before failing with "database is
// locked"; the rows are then kept for the next flush.
const busyTimeout = 5 * time.Second

// Store is the SQLite file holding the traffic tables. Its methods are safe
// for concurrent use; the Aggregator is meant to be the file's only writer,
// while any number of readers (the live printer, reports, the sqlite3 shell)
// may read at the same time.
type Store struct {
	db   *sql.DB
	path string

	mu    sync.Mutex // serialises writes with the rollups that move state
	state horizons   // the writer's copy of rollup_state
}

// Open opens the SQLite file at path for writing, creating it, its parent
// directory (mode 0750) and the schema when missing, and upgrading a file
// written by an earlier release in place; log (nil: slog.Default()) hears
// about upgrades. It refuses a file of a newer schema.
func Open(path string, log *slog.Logger) (*Store, error) {
	return open(path, busyTimeout, log)
}

// open is Open with a lock wait of busy; tests shorten it.
func open(path string, busy time.Duration, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, busy))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// The file is held open only while a statement runs, so that a change
	// made to it while the daemon runs (its mode, a read-only remount) counts
	// from the next flush on, as it would for a new process, instead of
	// being bypassed through a handle opened before. Opening costs about
	// half a millisecond, and the last close checkpoints the WAL, which a
	// checkpoint would do soon anyway.
	db.SetMaxIdleConns(0)
	st := &Store{db: db, path: path}
	ctx := context.Background()
	if err := migrate(ctx, db, log); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if st.state, err = readHorizons(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return st, nil
}

// OpenReadOnly opens the SQLite file at path for queries only, as reports
// do, without creating or changing anything: it can run beside the daemon
// and never blocks it. The file must have this collector's schema; an older
// one is upgraded by starting the daemon.
func OpenReadOnly(path string) (*Store, error) {
	st, err := openReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return st, nil
}

func openReadOnly(path string) (*Store, error) {
	// SQLite would report a missing file as "out of memory".
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("no such file (is SQLITE_PATH right, and has the daemon run?)")
	}
	db, err := sql.Open("sqlite", fmt.Sprintf("%s?mode=ro&_pragma=busy_timeout(%d)", fileURI(path), busyTimeout.Milliseconds()))
	if err != nil {
		return nil, err
	}
	version, err := userVersion(context.Background(), db)
	if err == nil && version != schemaVersion {
		err = fmt.Errorf("schema version %d, this collector reads %d", version, schemaVersion)
		if version < schemaVersion {
			err = fmt.Errorf("%w: start the daemon once to upgrade the file", err)
		}
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, path: path}, nil
}

// dsn returns the writer's SQLite URI. WAL keeps readers and the writer out
// of each other's way; _txlock=immediate takes the write lock when a
// transaction begins, where waiting for it can still help, rather than on
// the first write, where a conflict can only fail. Read-only transactions
// still begin deferred and take no lock.
func dsn(path string, busy time.Duration) string {
	return fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		fileURI(path), busy.Milliseconds())
}

// fileURI turns a file path into an SQLite URI, escaping the characters a
// URI path cannot hold verbatim.
func fileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// rowKey identifies one minute row: a minute (unix seconds) and a client, the
// zero Addr standing for the overflow entry.
type rowKey struct {
	minute int64
	client netip.Addr
}

// ip returns the key's ip column value.
func (k rowKey) ip() string {
	return ipColumn(k.client)
}

// ipColumn returns the ip column value of a client, the zero Addr standing
// for the overflow entry.
func ipColumn(client netip.Addr) string {
	if !client.IsValid() {
		return overflowIP
	}
	return client.String()
}

// name is a reverse DNS name found at unix time at.
type name struct {
	dns string
	at  int64
}

// write adds rows to the minute table and stores names, all in one
// transaction, so a failure leaves the file as it was and the caller can
// retry with the same rows without counting anything twice.
func (s *Store) write(ctx context.Context, rows map[rowKey]*bpfgo.Traffic, names map[netip.Addr]name) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeTx(ctx, rows, names); err != nil {
		return fmt.Errorf("flush %d rows to %s: %w", len(rows), s.path, err)
	}
	return nil
}

func (s *Store) writeTx(ctx context.Context, rows map[rowKey]*bpfgo.Traffic, names map[netip.Addr]name) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed
	if err := upsert(ctx, tx, Minutes, keyOrder(rows)); err != nil {
		return err
	}
	// A row for an hour or day already rolled up (a drain that failed for
	// a while, the clock set back) goes into the rollups too, so that they
	// always equal the sums of the rows they stand for.
	if err := upsert(ctx, tx, Hours, lateRows(rows, Hours, s.state.hourlyUntil)); err != nil {
		return err
	}
	if err := upsert(ctx, tx, Days, lateRows(rows, Days, s.state.dailyUntil)); err != nil {
		return err
	}
	if len(names) > 0 {
		stmt, err := tx.PrepareContext(ctx, upsertNameSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for addr, n := range names {
			if _, err := stmt.ExecContext(ctx, addr.String(), n.dns, n.at); err != nil {
				return fmt.Errorf("store name of %s: %w", addr, err)
			}
		}
	}
	return tx.Commit()
}

// keyedRow is a row to add to a table.
type keyedRow struct {
	at      int64
	ip      string
	traffic *bpfgo.Traffic
}

// keyOrder returns rows in the tables' primary key order. Inserting in that
// order touches each page of the b-tree once, where map order would jump
// around it and, with a large flush, push pages out of SQLite's cache and
// read them back: a 100,000-row flush takes half the time sorted.
func keyOrder(rows map[rowKey]*bpfgo.Traffic) []keyedRow {
	out := make([]keyedRow, 0, len(rows))
	for k, t := range rows {
		out = append(out, keyedRow{at: k.minute, ip: k.ip(), traffic: t})
	}
	slices.SortFunc(out, func(a, b keyedRow) int {
		return cmp.Or(cmp.Compare(a.at, b.at), strings.Compare(a.ip, b.ip))
	})
	return out
}

// lateRows sums the rows older than until into rows of table t, in key order.
func lateRows(rows map[rowKey]*bpfgo.Traffic, t Table, until int64) []keyedRow {
	late := make(map[rowKey]*bpfgo.Traffic)
	for k, tr := range rows {
		if k.minute >= until {
			continue
		}
		k.minute -= k.minute % t.step()
		sum := late[k]
		if sum == nil {
			sum = new(bpfgo.Traffic)
			late[k] = sum
		}
		sum.Add(tr)
	}
	return keyOrder(late)
}

// batchRows is how many rows one INSERT statement carries: a statement per
// row spends most of a flush crossing into SQLite. 256 rows of 14 values
// stay well below SQLite's limit of 32,766 bound values.
const batchRows = 256

// upsert adds rows to table t, batchRows at a time.
func upsert(ctx context.Context, tx *sql.Tx, t Table, rows []keyedRow) error {
	var full *sql.Stmt
	args := make([]any, 0, min(len(rows), batchRows)*(2+len(columns)))
	for len(rows) > 0 {
		n := min(len(rows), batchRows)
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.at, r.ip)
			for _, c := range columns {
				// database/sql refuses uint64 values with the top bit
				// set; no counter comes near it.
				args = append(args, int64(*c.tally(r.traffic)))
			}
		}
		stmt := full
		if n < batchRows || full == nil {
			var err error
			if stmt, err = tx.PrepareContext(ctx, upsertSQL(t, n)); err != nil {
				return fmt.Errorf("prepare insert into %s: %w", t, err)
			}
			defer stmt.Close()
			if n == batchRows {
				full = stmt
			}
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("add %d rows to %s from %s at %d: %w", n, t, rows[0].ip, rows[0].at, err)
		}
		rows = rows[n:]
	}
	return nil
}
