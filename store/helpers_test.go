package store

import (
	"context"
	"database/sql"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/traffic"
)

// lockWait is the busy timeout of test stores: long enough for a write to
// get a free file, short enough not to sit out the daemon's 5 s when the
// test holds the lock.
const lockWait = 50 * time.Millisecond

// t0 is a minute boundary, 10:00 on day0.
var t0 = day0.Add(10 * time.Hour)

// openStore opens a fresh file in a directory Open has to create.
func openStore(t testing.TB) *Store {
	t.Helper()
	return openWith(t, filepath.Join(t.TempDir(), "data", "traffic.db"), Options{})
}

// openPath opens the file at path for writing.
func openPath(t testing.TB, path string) *Store {
	t.Helper()
	return openWith(t, path, Options{})
}

// openWith opens the file at path for writing with opts, logging nowhere
// unless opts says otherwise and waiting lockWait for a lock, and closes
// it at the end of the test.
func openWith(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if opts.Log == nil {
		opts.Log = discard
	}
	opts.LockWait = lockWait
	st, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// clientOf returns the client of the address s.
func clientOf(s string) traffic.Client {
	return traffic.ClientOf(netip.MustParseAddr(s))
}

// clientN returns distinct clients.
func clientN(i int) traffic.Client {
	return traffic.ClientOf(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
}

// seeded returns a Traffic whose every counter differs, so a value landing
// in the wrong column shows.
func seeded(seed uint64) traffic.Traffic {
	var t traffic.Traffic
	for c := range t {
		for d := range t[c] {
			cell := uint64(c*len(t[c]) + d + 1)
			t[c][d] = traffic.Tally{Bytes: seed*1000 + cell*7, Packets: seed*10 + cell}
		}
	}
	return t
}

// sum adds up seeded(seed) for every seed.
func sum(seeds ...uint64) traffic.Traffic {
	var t traffic.Traffic
	for _, s := range seeds {
		x := seeded(s)
		t.Add(&x)
	}
	return t
}

// rowKey identifies a stored row: the start of its minute, hour or day in
// unix seconds, and its client.
type rowKey struct {
	start  int64
	client traffic.Client
}

// rows turns a test's table of rows into what Store.Write takes, in map
// order: Write must not depend on the order it is given.
func rows(want map[rowKey]traffic.Traffic) []traffic.Row {
	out := make([]traffic.Row, 0, len(want))
	for k, t := range want {
		out = append(out, traffic.Row{Start: time.Unix(k.start, 0), Client: k.client, Traffic: t})
	}
	return out
}

// write adds rows to st, failing the test if it cannot.
func write(t testing.TB, st *Store, want map[rowKey]traffic.Traffic) {
	t.Helper()
	if err := st.Write(t.Context(), rows(want)); err != nil {
		t.Fatal(err)
	}
}

// readRows returns every row of table.
func readRows(t testing.TB, st *Store, table Table) map[rowKey]traffic.Traffic {
	t.Helper()
	return readQuery(t, st, table, Query{})
}

// readQuery returns the rows of table that q selects, failing on a row
// read twice.
func readQuery(t testing.TB, st *Store, table Table, q Query) map[rowKey]traffic.Traffic {
	t.Helper()
	got := make(map[rowKey]traffic.Traffic)
	err := st.Rows(t.Context(), table, q, func(r *Row) error {
		k := rowKey{r.Start.Unix(), r.Client}
		if _, ok := got[k]; ok {
			t.Errorf("%s: row %s at %d read twice", table, k.client, k.start)
		}
		got[k] = r.Traffic
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRows fails unless the minute table holds exactly want.
func checkRows(t testing.TB, st *Store, want map[rowKey]traffic.Traffic) {
	t.Helper()
	checkTable(t, st, Minutes, want)
}

// checkTable fails unless table holds exactly want.
func checkTable(t testing.TB, st *Store, table Table, want map[rowKey]traffic.Traffic) {
	t.Helper()
	checkSame(t, table.String(), readRows(t, st, table), want)
}

// checkSame fails unless got holds exactly the rows of want.
func checkSame(t testing.TB, what string, got, want map[rowKey]traffic.Traffic) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: row %s at %d missing", what, k.client, k.start)
		} else if g != w {
			t.Errorf("%s: row %s at %d = %+v, want %+v", what, k.client, k.start, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected row %s at %d", what, k.client, k.start)
		}
	}
}

// lockStore takes the write lock of st's file from a second connection, as
// the sqlite3 shell or a backup would, until the returned func is called.
func lockStore(t testing.TB, st *Store) (unlock func()) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(st.path, lockWait))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tx, err := db.Begin() // BEGIN IMMEDIATE through the DSN: the write lock
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
}

// discard is a logger for tests that do not look at the logs.
var discard = slog.New(slog.DiscardHandler)

// allClients is TopClients with no limit, every class.
func allClients(st *Store, ctx context.Context, q Query) ([]ClientTotal, error) {
	top, err := st.TopClients(ctx, q, 0, nil)
	return top.Clients, err
}
