package agg

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// lockWait is how long test stores wait for a lock: long enough for a
// write to get past a reader, short enough for outage tests to be quick.
const lockWait = 100 * time.Millisecond

// openStore opens a fresh file in a directory Open has to create.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	return openPath(t, newPath(t), store.Options{})
}

// newPath returns where a fresh database goes, in a directory that does
// not exist yet.
func newPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "data", "traffic.db")
}

// openPath opens the file at path for writing, closing it at the end of the
// test. The logs are discarded unless opts says where they go, and a write
// waits for a lock lockWait unless opts says otherwise.
func openPath(t testing.TB, path string, opts store.Options) *store.Store {
	t.Helper()
	if opts.Log == nil {
		opts.Log = discard
	}
	if opts.LockWait == 0 {
		opts.LockWait = lockWait
	}
	st, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// addrN returns distinct clients.
func addrN(i int) traffic.Client {
	return traffic.ClientOf(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
}

// sample is what the kernel hands over for the client at addr.
func sample(addr string, seed uint64) traffic.Sample {
	return traffic.Sample{Client: traffic.ClientOf(netip.MustParseAddr(addr)), Traffic: dbtest.Seeded(seed)}
}

// overflow is what the kernel hands over for its overflow entry.
func overflow(seed uint64) traffic.Sample {
	return traffic.Sample{Client: traffic.Other, Traffic: dbtest.Seeded(seed)}
}

// expect adds samples to want as the aggregator should: under minute, by
// client, zeros left out.
func expect(want map[rowKey]traffic.Traffic, minute time.Time, samples []traffic.Sample) {
	for _, s := range samples {
		if !s.Traffic.IsZero() {
			addTo(want, rowKey{minute: minute.Unix(), client: s.Client}, s.Traffic)
		}
	}
}

// addTo adds t to the row k of rows.
func addTo(rows map[rowKey]traffic.Traffic, k rowKey, t traffic.Traffic) {
	r := rows[k]
	r.Add(&t)
	rows[k] = r
}

// groupBy sums the rows of truth whose time is in [from, to) into rows of
// step seconds.
func groupBy(truth map[rowKey]traffic.Traffic, step time.Duration, from, to time.Time) map[rowKey]traffic.Traffic {
	out := make(map[rowKey]traffic.Traffic)
	for k, tr := range truth {
		if at := time.Unix(k.minute, 0); at.Before(from) || !at.Before(to) {
			continue
		}
		k.minute = time.Unix(k.minute, 0).Truncate(step).Unix()
		addTo(out, k, tr)
	}
	return out
}

// keyed sums rows by minute and client.
func keyed(rows []traffic.Row) map[rowKey]traffic.Traffic {
	out := make(map[rowKey]traffic.Traffic, len(rows))
	for _, r := range rows {
		addTo(out, rowKey{minute: r.Start.Unix(), client: r.Client}, r.Traffic)
	}
	return out
}

// readRows returns every row of table.
func readRows(t testing.TB, st *store.Store, table store.Table) map[rowKey]traffic.Traffic {
	t.Helper()
	got := make(map[rowKey]traffic.Traffic)
	err := st.Rows(t.Context(), table, store.Query{}, func(r *store.Row) error {
		got[rowKey{r.Start.Unix(), r.Client}] = r.Traffic
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRows fails unless the minute table holds exactly want.
func checkRows(t testing.TB, st *store.Store, want map[rowKey]traffic.Traffic) {
	t.Helper()
	checkTable(t, st, store.Minutes, want)
}

// checkTable fails unless table holds exactly want.
func checkTable(t testing.TB, st *store.Store, table store.Table, want map[rowKey]traffic.Traffic) {
	t.Helper()
	dbtest.CheckSame(t, table.String(), readRows(t, st, table), want)
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

// blocker makes the database at path unwritable until unblock is called.
type blocker struct {
	name  string
	block func(t testing.TB, path string) (unblock func())
	errs  []string // what a failed write may say
}

// blockers are the ways the database becomes unwritable under a running
// daemon.
var blockers = []blocker{
	{name: "locked by another writer", block: dbtest.LockFile, errs: []string{"database is locked"}},
	{
		name:  "read-only",
		block: func(t testing.TB, path string) func() { return makeReadOnly(t, filepath.Dir(path)) },
		// A read-only file is opened read-only; on a read-only mount the
		// WAL index cannot be created either.
		errs: []string{"attempt to write a readonly database", "unable to open database file"},
	},
}

// recorder is a Consumer that records every period it takes, passing it
// on to next when set. While fail is set it takes nothing and returns fail.
type recorder struct {
	name string
	next Consumer

	mu    sync.Mutex
	fail  error
	calls int
	taken []traffic.Period
}

func (r *recorder) Consume(ctx context.Context, p traffic.Period) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		return r.fail
	}
	if r.next != nil {
		if err := r.next.Consume(ctx, p); err != nil {
			return err
		}
	}
	r.taken = append(r.taken, p)
	return nil
}

// String names the recorder in the journal.
func (r *recorder) String() string { return r.name }

// setFail makes the next calls fail with err, or succeed when err is nil.
func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// periods returns the periods taken so far.
func (r *recorder) periods() []traffic.Period {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.taken)
}

// rows returns the rows of every period taken, summed by minute and
// client.
func (r *recorder) rows() map[rowKey]traffic.Traffic {
	var all []traffic.Row
	for _, p := range r.periods() {
		all = append(all, p.Rows...)
	}
	return keyed(all)
}

// drainFunc adapts a function to Drainer.
type drainFunc func() ([]traffic.Sample, error)

func (f drainFunc) Drain() ([]traffic.Sample, error) { return f() }

// feed is a Drainer handing out prepared batches, one per call, and nothing
// once they run out.
type feed struct {
	mu      sync.Mutex
	batches [][]traffic.Sample
}

func (f *feed) Drain() ([]traffic.Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) == 0 {
		return nil, nil
	}
	b := f.batches[0]
	f.batches = f.batches[1:]
	return b, nil
}

func (f *feed) push(b []traffic.Sample) {
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
func allClients(ctx context.Context, st *store.Store, q store.Query) ([]store.ClientTotal, error) {
	top, err := st.TopClients(ctx, q, 0, nil)
	return top.Clients, err
}

// eventually polls cond for up to two seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
