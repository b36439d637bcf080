package agg

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/bpfgo"
	_ "modernc.org/sqlite" // registers the pure Go driver "sqlite"
)

// busyTimeout is how long a statement waits for a lock another connection
// holds (the sqlite3 shell, a backup) before failing with "database is
// locked"; the rows are then kept for the next flush.
const busyTimeout = 5 * time.Second

// Store is the SQLite file holding the traffic table. Its methods are safe
// for concurrent use; the Aggregator is meant to be the file's only writer,
// while any number of readers (TotalsSince, the sqlite3 shell) may read at
// the same time.
type Store struct {
	db   *sql.DB
	path string
}

// ClientTotal is one client's traffic summed over a span of minutes.
type ClientTotal struct {
	// Client is the remote address; the zero Addr when Overflow is set.
	Client netip.Addr
	// Overflow marks the entry for clients the kernel map had no room for
	// (ip 'other' in the table).
	Overflow bool
	// DNS is the client's reverse DNS name, or "" when none is known.
	DNS string
	// Traffic holds the summed bytes and packets per class and direction.
	Traffic bpfgo.Traffic
}

// Open opens the SQLite file at path, creating it, its parent directory
// (mode 0750) and the traffic table when missing. It refuses a file whose
// schema it does not know.
func Open(path string) (*Store, error) {
	return open(path, busyTimeout)
}

// open is Open with a lock wait of busy; tests shorten it.
func open(path string, busy time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, busy))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := initSchema(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// dsn turns a file path into an SQLite URI, escaping the characters a URI
// path cannot hold verbatim. WAL keeps readers and the writer out of each
// other's way; _txlock=immediate takes the write lock when a transaction
// begins, where waiting for it can still help, rather than on the first
// write, where a conflict can only fail.
func dsn(path string, busy time.Duration) string {
	escape := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		escape.Replace(path), busy.Milliseconds())
}

// initSchema creates the table in a new file and checks the version of an
// existing one.
func initSchema(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed
	var version int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version == schemaVersion:
		return nil
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this collector's (%d)", version, schemaVersion)
	}
	var tables int
	if err := tx.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'traffic'`).Scan(&tables); err != nil {
		return fmt.Errorf("look for table traffic: %w", err)
	}
	if tables > 0 {
		return errors.New("table traffic has no schema version (written by an earlier collector?); upgrading it is not supported yet")
	}
	if _, err := tx.Exec(createTableSQL); err != nil {
		return fmt.Errorf("create table traffic: %w", err)
	}
	// PRAGMA takes no bound parameters.
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return tx.Commit()
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// rowKey identifies one row of the traffic table: a minute (unix seconds) and
// a client, the zero Addr standing for the overflow entry.
type rowKey struct {
	minute int64
	client netip.Addr
}

// ip returns the key's ip column value.
func (k rowKey) ip() string {
	if !k.client.IsValid() {
		return overflowIP
	}
	return k.client.String()
}

// row is what a flush adds to one row of the table.
type row struct {
	dns     string
	traffic bpfgo.Traffic
}

// nameFill is a name found for a client whose rows were stored without one,
// the earliest of them at minute since.
type nameFill struct {
	client netip.Addr
	name   string
	since  int64
}

// write adds rows to the table and fills in names, all in one transaction, so
// a failure leaves the file as it was and the caller can retry with the same
// rows without counting anything twice.
func (s *Store) write(ctx context.Context, rows map[rowKey]*row, fills []nameFill) error {
	if err := s.writeTx(ctx, rows, fills); err != nil {
		return fmt.Errorf("flush %d rows to %s: %w", len(rows), s.path, err)
	}
	return nil
}

func (s *Store) writeTx(ctx context.Context, rows map[rowKey]*row, fills []nameFill) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed
	if len(rows) > 0 {
		upsert, err := tx.PrepareContext(ctx, upsertSQL)
		if err != nil {
			return err
		}
		defer upsert.Close()
		args := make([]any, 3+len(columns))
		for _, k := range keyOrder(rows) {
			r := rows[k.rowKey]
			args[0], args[1], args[2] = k.minute, k.ip, r.dns
			for i, c := range columns {
				// database/sql refuses uint64 values with the top bit set;
				// no counter of a minute comes near it.
				args[3+i] = int64(*c.tally(&r.traffic))
			}
			if _, err := upsert.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("add row %s at %d: %w", k.ip, k.minute, err)
			}
		}
	}
	if len(fills) > 0 {
		fill, err := tx.PrepareContext(ctx, fillNameSQL)
		if err != nil {
			return err
		}
		defer fill.Close()
		for _, f := range fills {
			if _, err := fill.ExecContext(ctx, f.name, f.since, f.client.String()); err != nil {
				return fmt.Errorf("fill name of %s: %w", f.client, err)
			}
		}
	}
	return tx.Commit()
}

type orderedKey struct {
	rowKey
	ip string
}

// keyOrder returns the keys of rows in the table's primary key order. Inserting
// in that order touches each page of the b-tree once, where map order would
// jump around it and, with a large flush, push pages out of SQLite's cache
// and read them back: a 100,000-row flush takes half the time sorted.
func keyOrder(rows map[rowKey]*row) []orderedKey {
	keys := make([]orderedKey, 0, len(rows))
	for k := range rows {
		keys = append(keys, orderedKey{rowKey: k, ip: k.ip()})
	}
	slices.SortFunc(keys, func(a, b orderedKey) int {
		return cmp.Or(cmp.Compare(a.minute, b.minute), strings.Compare(a.ip, b.ip))
	})
	return keys
}

// TotalsSince sums each client's stored traffic from the minute of since on,
// busiest client (by bytes) first. It reads committed rows only and does not
// wait for a flush in progress.
func (s *Store) TotalsSince(ctx context.Context, since time.Time) ([]ClientTotal, error) {
	totals, err := s.totalsSince(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("read totals since %s from %s: %w", since.Format(time.RFC3339), s.path, err)
	}
	return totals, nil
}

func (s *Store) totalsSince(ctx context.Context, since time.Time) ([]ClientTotal, error) {
	rows, err := s.db.QueryContext(ctx, totalsSQL, since.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		ip, dns string
		sums    = make([]int64, len(columns))
		dest    = []any{&ip, &dns}
		totals  []ClientTotal
	)
	for i := range sums {
		dest = append(dest, &sums[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		t := ClientTotal{DNS: dns}
		if ip == overflowIP {
			t.Overflow = true
		} else if t.Client, err = netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("row with ip %q: %w", ip, err)
		}
		for i, c := range columns {
			*c.tally(&t.Traffic) = uint64(sums[i])
		}
		totals = append(totals, t)
	}
	return totals, rows.Err()
}
