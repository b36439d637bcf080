package agg

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/syncbuf"
)

// lockWait is the busy timeout of test stores: long enough for a flush to
// get a free file, short enough not to sit out the daemon's 5 s when the
// test holds the lock.
const lockWait = 50 * time.Millisecond

// openStore opens a fresh file in a directory Open has to create.
func openStore(t testing.TB) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "data", "traffic.db"))
}

// openPath opens the file at path for writing, closing it at the end of the
// test.
func openPath(t testing.TB, path string) *Store {
	t.Helper()
	st, err := open(path, lockWait, discard)
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

// sum adds up traffic(seed) for every seed.
func sum(seeds ...uint64) bpfgo.Traffic {
	var t bpfgo.Traffic
	for _, s := range seeds {
		x := traffic(s)
		t.Add(&x)
	}
	return t
}

// rows turns a test's table of rows into what Store.write takes.
func rows(want map[rowKey]bpfgo.Traffic) map[rowKey]*bpfgo.Traffic {
	out := make(map[rowKey]*bpfgo.Traffic, len(want))
	for k, t := range want {
		out[k] = &t
	}
	return out
}

// readRows returns every row of table.
func readRows(t testing.TB, st *Store, table Table) map[rowKey]bpfgo.Traffic {
	t.Helper()
	got := make(map[rowKey]bpfgo.Traffic)
	err := st.Rows(t.Context(), table, Query{}, func(r *Row) error {
		got[rowKey{r.Start.Unix(), r.Client}] = r.Traffic
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRows fails unless the minute table holds exactly want.
func checkRows(t testing.TB, st *Store, want map[rowKey]bpfgo.Traffic) {
	t.Helper()
	checkTable(t, st, Minutes, want)
}

// checkTable fails unless table holds exactly want.
func checkTable(t testing.TB, st *Store, table Table, want map[rowKey]bpfgo.Traffic) {
	t.Helper()
	got := readRows(t, st, table)
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: row %s at %d missing", table, k.ip(), k.minute)
		} else if g != w {
			t.Errorf("%s: row %s at %d = %+v, want %+v", table, k.ip(), k.minute, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected row %s at %d", table, k.ip(), k.minute)
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

// makeReadOnly makes dir, and the database files in it, read-only for this
// process until the returned func is called. The Store holds no file open
// between statements, so its next flush meets the change as a new process
// would. As a user that is a chmod; root ignores file modes, so as root dir
// is bind-mounted read-only onto itself instead, which root cannot write
// through either (EROFS, as on a filesystem remounted read-only).
func makeReadOnly(t testing.TB, dir string) (restore func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		chmod := func(fileMode, dirMode os.FileMode) {
			for _, f := range files {
				if err := os.Chmod(f, fileMode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, dirMode); err != nil {
				t.Fatal(err)
			}
		}
		chmod(0o444, 0o555)
		return func() { chmod(0o644, 0o750) }
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", dir, err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		})
	}
	t.Cleanup(restore)
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	return restore
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
type logBuffer struct{ syncbuf.Buffer }

// count returns how many log lines contain all of parts.
func (b *logBuffer) count(parts ...string) int {
	n := 0
lines:
	for line := range strings.Lines(b.String()) {
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

// discard is a logger for tests that do not look at the logs.
var discard = slog.New(slog.DiscardHandler)

// allClients is TopClients with no limit, every class.
func allClients(st *Store, ctx context.Context, q Query) ([]ClientTotal, error) {
	top, err := st.TopClients(ctx, q, 0, nil)
	return top.Clients, err
}
