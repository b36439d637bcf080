package agg

import (
	"bytes"
	"database/sql"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
)

// lockWait is the busy timeout of test stores: long enough for a flush to
// get a free file, short enough not to sit out the daemon's 5 s when the
// test holds the lock.
const lockWait = 50 * time.Millisecond

// openStore opens a fresh file in a directory Open has to create.
func openStore(t testing.TB) *Store {
	t.Helper()
	st, err := open(filepath.Join(t.TempDir(), "data", "traffic.db"), lockWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// traffic returns a Traffic whose every counter differs, so a value landing
// in the wrong column shows.
func traffic(seed uint64) bpfgo.Traffic {
	var t bpfgo.Traffic
	for c := range t {
		for d := range t[c] {
			cell := uint64(c*len(t[c]) + d + 1)
			t[c][d] = bpfgo.Tally{Bytes: seed*1000 + cell*7, Packets: seed*10 + cell}
		}
	}
	return t
}

// readRows returns every row of the traffic table.
func readRows(t testing.TB, st *Store) map[rowKey]row {
	t.Helper()
	rows, err := st.db.Query("SELECT timestamp, ip, dns, " + columnList("%s", ", ") + " FROM traffic")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[rowKey]row)
	for rows.Next() {
		var (
			k    rowKey
			ip   string
			r    row
			vals = make([]int64, len(columns))
			dest = []any{&k.minute, &ip, &r.dns}
		)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		if ip != overflowIP {
			k.client = netip.MustParseAddr(ip)
		}
		for i, c := range columns {
			*c.tally(&r.traffic) = uint64(vals[i])
		}
		got[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRows fails unless the table holds exactly want.
func checkRows(t testing.TB, st *Store, want map[rowKey]row) {
	t.Helper()
	got := readRows(t, st)
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("row %s at %d missing", k.ip(), k.minute)
		} else if g != w {
			t.Errorf("row %s at %d = %+v, want %+v", k.ip(), k.minute, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected row %s at %d", k.ip(), k.minute)
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

// drainFunc adapts a function to Drainer.
type drainFunc func() ([]bpfgo.Sample, error)

func (f drainFunc) Drain() ([]bpfgo.Sample, error) { return f() }

// feed is a Drainer handing out prepared batches, one per call, and nothing
// once they run out.
type feed struct {
	mu      sync.Mutex
	batches [][]bpfgo.Sample
}

func (f *feed) Drain() ([]bpfgo.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) == 0 {
		return nil, nil
	}
	b := f.batches[0]
	f.batches = f.batches[1:]
	return b, nil
}

func (f *feed) push(b []bpfgo.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, b)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many log lines contain all of parts.
func (b *logBuffer) count(parts ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
lines:
	for line := range strings.Lines(b.buf.String()) {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

func newLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
