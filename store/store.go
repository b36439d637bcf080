package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/traffic"
	_ "modernc.org/sqlite" // registers the pure Go driver "sqlite"
)

// DefaultLockWait is the default of Options.LockWait.
const DefaultLockWait = 5 * time.Second

// Store is the SQLite file holding the traffic tables. Its methods are safe
// for concurrent use; the daemon is meant to be the file's only writer,
// while any number of readers (reports, the sqlite3 shell) may read at the
// same time.
type Store struct {
	db   *sql.DB
	path string
	opts Options

	mu      sync.Mutex    // serialises writes with the rollups that move state
	state   horizons      // the writer's copy of rollup_state
	rollups outage.Outage // maintenance failing, logged once per run
	// folds are what the row budgets of the rollups folded, by table
	// (Hours and Days; agg keeps the budget of the minute rows).
	folds [Days + 1]rollupFolds
}

// Options tune a Store opened for writing; the zero value of each field
// gives its default.
type Options struct {
	// Log hears about upgrades and about rollups failing and recovering;
	// default slog.Default().
	Log *slog.Logger
	// Retention says how long minute and hourly rows are kept.
	Retention Retention
	// MaintainBudget bounds the rollups and retention run after a write,
	// leaving the rest to the next one; default DefaultMaintainBudget.
	MaintainBudget time.Duration
	// Now reads the clock retention counts from; default time.Now.
	Now func() time.Time
	// MaxClientRows bounds the client rows of one hour in traffic_hourly
	// and of one day in traffic_daily, beside 'other' (MAX_CLIENT_ROWS);
	// 0 sets no bound.
	MaxClientRows int

	// LockWait is how long a statement waits for a lock another
	// connection holds (the sqlite3 shell, a backup) before failing with
	// "database is locked"; the rows are then kept for the next flush.
	// Default DefaultLockWait.
	LockWait time.Duration
}

// DefaultMaintainBudget is the default of Options.MaintainBudget: half of
// the default flush interval.
const DefaultMaintainBudget = 30 * time.Second

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Retention = o.Retention.withDefaults()
	if o.MaintainBudget <= 0 {
		o.MaintainBudget = DefaultMaintainBudget
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	return o
}

// Open opens the SQLite file at path for writing, creating it, its parent
// directory (mode 0750) and the schema when missing, and upgrading a file
// written by an earlier release in place. It refuses a file of a newer
// schema.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	log, busy := opts.Log, opts.LockWait
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
	st := &Store{db: db, path: path, opts: opts, rollups: outage.Outage{
		Start: "cannot roll up or apply retention; retrying every flush",
		End:   "rolling up again",
	}}
	st.folds[Hours], st.folds[Days] = newRollupFolds(Hours), newRollupFolds(Days)
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
	db, err := sql.Open("sqlite", fmt.Sprintf("%s?mode=ro&_pragma=busy_timeout(%d)", fileURI(path), DefaultLockWait.Milliseconds()))
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

// String names the store in the journal.
func (s *Store) String() string { return "the database " + s.path }

// Consume adds the rows of a closed period, then rolls up the hours that
// closed by its end and applies retention. An error means nothing was
// written, and the caller may hand the same rows again; a failure of the
// rollups after a successful write is logged and retried after the next
// write instead, so that no row is ever added twice. The aggregator calls
// it one period at a time; it is not meant for concurrent callers.
func (s *Store) Consume(ctx context.Context, p traffic.Period) error {
	if err := s.write(ctx, p.Rows, p.Proven); err != nil {
		return err
	}
	// Rows handed over from now on are filed under p.End's minute or
	// later, so every hour before it is closed.
	err := s.maintain(ctx, p.End, s.opts.Now(), s.opts.Retention, s.opts.MaintainBudget)
	s.rollups.Update(ctx, s.opts.Log, s.opts.Now(), err)
	return nil
}

// Write adds rows to the minute table, in one transaction, so a failure
// leaves the file as it was and the caller can retry with the same rows
// without counting anything twice. Rows of a time already rolled up (a
// write that failed for a while, the clock set back) go into the rollups
// too, so that they always equal the sums of the rows they stand for.
func (s *Store) Write(ctx context.Context, rows []traffic.Row) error {
	return s.write(ctx, rows, nil)
}

// write is Write recording too which clients of rows were proven real,
// for the row budget of the rollups.
func (s *Store) write(ctx context.Context, rows []traffic.Row, proven []traffic.Client) error {
	if len(rows) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeTx(ctx, rows, proven); err != nil {
		return fmt.Errorf("flush %d rows to %s: %w", len(rows), s.path, err)
	}
	return nil
}

func (s *Store) writeTx(ctx context.Context, rows []traffic.Row, proven []traffic.Client) error {
	return s.inWrite(ctx, func(tx *sql.Tx, seq int64) error {
		return s.addRows(ctx, tx, seq, rows, proven)
	})
}

// addRows adds rows to the minutes, and to the hours and days already
// rolled up past them, in tx as write seq.
func (s *Store) addRows(ctx context.Context, tx *sql.Tx, seq int64, rows []traffic.Row, proven []traffic.Client) error {
	keyed := keyOrder(rows)
	if err := upsert(ctx, tx, Minutes, keyed, seq); err != nil {
		return err
	}
	if err := saveProven(ctx, tx, keyed, proven); err != nil {
		return err
	}
	if err := addEgress(ctx, tx, keyed); err != nil {
		return err
	}
	if err := upsert(ctx, tx, Hours, lateRows(keyed, Hours, s.state.hourlyUntil), seq); err != nil {
		return err
	}
	return upsert(ctx, tx, Days, lateRows(keyed, Days, s.state.dailyUntil), seq)
}

// SaveNames stores the latest name of each address.
func (s *Store) SaveNames(ctx context.Context, names []traffic.Name) error {
	if len(names) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store names in %s: %w", s.path, err)
	}
	defer tx.Rollback() // a no-op once committed
	stmt, err := tx.PrepareContext(ctx, upsertNameSQL)
	if err != nil {
		return fmt.Errorf("store names in %s: %w", s.path, err)
	}
	defer stmt.Close()
	for _, n := range names {
		if _, err := stmt.ExecContext(ctx, n.Addr.Unmap().String(), n.DNS, n.Found.Unix()); err != nil {
			return fmt.Errorf("store name of %s in %s: %w", n.Addr, s.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store names in %s: %w", s.path, err)
	}
	return nil
}

// Names is the stored reverse DNS name of each of clients that has one.
func (s *Store) Names(ctx context.Context, clients []traffic.Client) (map[traffic.Client]string, error) {
	ips := make([]string, 0, len(clients))
	for _, c := range clients {
		if !c.IsOther() {
			ips = append(ips, c.String())
		}
	}
	names := make(map[traffic.Client]string)
	if len(ips) == 0 {
		return names, nil
	}
	list, err := json.Marshal(ips)
	if err != nil {
		return nil, err
	}
	err = s.read(ctx, func(tx *sql.Tx, _ horizons) error {
		rows, err := tx.QueryContext(ctx, `SELECT ip, dns FROM names WHERE ip IN (SELECT value FROM json_each(?)) AND dns != ''`, string(list))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ip, dns string
			if err := rows.Scan(&ip, &dns); err != nil {
				return err
			}
			c, err := traffic.ParseClient(ip)
			if err != nil {
				return err
			}
			names[c] = dns
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read names from %s: %w", s.path, err)
	}
	return names, nil
}

// keyedRow is a row to add to a table, keyed as the table is.
type keyedRow struct {
	at      int64
	ip      string
	traffic *traffic.Traffic
}

// keyOrder returns rows in the tables' primary key order. Inserting in that
// order touches each page of the b-tree once, where map order would jump
// around it and, with a large flush, push pages out of SQLite's cache and
// read them back: a 100,000-row flush takes half the time sorted.
func keyOrder(rows []traffic.Row) []keyedRow {
	out := make([]keyedRow, len(rows))
	for i := range rows {
		out[i] = keyedRow{at: rows[i].Start.Unix(), ip: rows[i].Client.String(), traffic: &rows[i].Traffic}
	}
	sortKeyed(out)
	return out
}

func sortKeyed(rows []keyedRow) {
	slices.SortFunc(rows, func(a, b keyedRow) int {
		return cmp.Or(cmp.Compare(a.at, b.at), strings.Compare(a.ip, b.ip))
	})
}

// lateRows sums the rows older than until into rows of table t, in key order.
func lateRows(rows []keyedRow, t Table, until int64) []keyedRow {
	type key struct {
		at int64
		ip string
	}
	late := make(map[key]*traffic.Traffic)
	for _, r := range rows {
		if r.at >= until {
			continue
		}
		k := key{floorTo(r.at, t.step()), r.ip}
		sum := late[k]
		if sum == nil {
			sum = new(traffic.Traffic)
			late[k] = sum
		}
		sum.Add(r.traffic)
	}
	out := make([]keyedRow, 0, len(late))
	for k, sum := range late {
		out = append(out, keyedRow{at: k.at, ip: k.ip, traffic: sum})
	}
	sortKeyed(out)
	return out
}

// batchRows is how many rows one INSERT statement carries: a statement per
// row spends most of a flush crossing into SQLite. 256 rows of 15 values
// stay well below SQLite's limit of 32,766 bound values.
const batchRows = 256

// upsert adds rows, in key order, to table t, batchRows at a time, as
// write seq.
func upsert(ctx context.Context, tx *sql.Tx, t Table, rows []keyedRow, seq int64) error {
	ats := make([]int64, len(rows))
	for i, r := range rows {
		ats[i] = r.at
	}
	if err := logWrite(ctx, tx, t, seq, ats); err != nil {
		return err
	}
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
