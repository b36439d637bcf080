package store

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
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
	dbtest.CheckSame(t, table.String(), readRows(t, st, table), want)
}

// discard is a logger for tests that do not look at the logs.
var discard = slog.New(slog.DiscardHandler)

// allClients is TopClients with no limit, every class.
func allClients(st *Store, ctx context.Context, q Query) ([]ClientTotal, error) {
	top, err := st.TopClients(ctx, q, 0, nil)
	return top.Clients, err
}
