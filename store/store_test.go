package store

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/traffic"
)

// tableInfo lists the columns of a table or view as "name type notnull=N
// default=D pk=N".
func tableInfo(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT name, type, \"notnull\", coalesce(dflt_value, ''), pk FROM pragma_table_info(?)", table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var name, typ, dflt string
		var notnull, pk int
		if err := rows.Scan(&name, &typ, &notnull, &dflt, &pk); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s notnull=%d default=%s pk=%d", name, typ, notnull, dflt, pk))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// Users' queries depend on these names: spelled out here on purpose.
var counterNames = []string{
	"consensus_up", "consensus_down", "siamux_up", "siamux_down", "quic_up", "quic_down",
	"consensus_up_packets", "consensus_down_packets", "siamux_up_packets",
	"siamux_down_packets", "quic_up_packets", "quic_down_packets",
}

func TestOpenCreatesSchema(t *testing.T) {
	st := openStore(t)

	info, err := os.Stat(filepath.Dir(st.path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o750 {
		t.Errorf("directory mode = %v, want 0750", perm)
	}

	tables := []string{
		"timestamp INTEGER notnull=1 default= pk=1",
		"ip TEXT notnull=1 default= pk=2",
	}
	view := []string{
		"timestamp INTEGER notnull=0 default= pk=0",
		"ip TEXT notnull=0 default= pk=0",
		"dns  notnull=0 default= pk=0",
	}
	for _, name := range counterNames {
		tables = append(tables, name+" INTEGER notnull=1 default=0 pk=0")
		view = append(view, name+" INTEGER notnull=0 default= pk=0")
	}
	for table, want := range map[string][]string{
		"traffic_minute": tables,
		"traffic_hourly": tables,
		"traffic_daily":  tables,
		"traffic":        view,
		"names": {
			"ip TEXT notnull=1 default= pk=1",
			"dns TEXT notnull=1 default= pk=0",
			"updated INTEGER notnull=1 default= pk=0",
		},
	} {
		if got := tableInfo(t, st.db, table); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("columns of %s:\n%s\nwant:\n%s", table, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	for pragma, want := range map[string]string{"user_version": strconv.Itoa(schemaVersion), "journal_mode": "wal"} {
		var got string
		if err := st.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// The path becomes a URI: characters with a meaning there must still name
// the file.
func TestOpenOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d", "traffic.db")
	st := openPath(t, path)
	st.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file not where asked: %v", err)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
}

func TestOpenRefuses(t *testing.T) {
	newer := fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)
	tests := []struct {
		name     string
		prepare  string // run on the file before opening; "" for no file
		readOnly bool
		wantErr  string
	}{
		{name: "newer version", prepare: newer, wantErr: fmt.Sprintf("schema version %d is newer than this collector's (%d)", schemaVersion+1, schemaVersion)},
		{name: "not ours", prepare: "CREATE TABLE traffic (when_ TEXT)", wantErr: "table traffic has no column timestamp"},
		{name: "read-only, no file", readOnly: true, wantErr: "no such file"},
		{name: "read-only, older version", prepare: "PRAGMA user_version = 1", readOnly: true,
			wantErr: fmt.Sprintf("schema version 1, this collector reads %d: start the daemon once to upgrade the file", schemaVersion)},
		{name: "read-only, newer version", prepare: newer, readOnly: true, wantErr: fmt.Sprintf("schema version %d, this collector reads %d", schemaVersion+1, schemaVersion)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "traffic.db")
			if tt.prepare != "" {
				rawExec(t, path, tt.prepare)
			}
			open := func(path string) (*Store, error) { return Open(path, Options{Log: discard}) }
			if tt.readOnly {
				open = OpenReadOnly
			}
			st, err := open(path)
			if err == nil {
				st.Close()
				t.Fatalf("open succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "open "+path+": ") {
				t.Errorf("error = %q, want it to name %s and contain %q", err, path, tt.wantErr)
			}
		})
	}
}

// rawExec runs statements on the file at path through a plain connection,
// as another program would.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestWriteAdds(t *testing.T) {
	v4, v6 := clientOf("192.0.2.1"), clientOf("2001:db8::1")
	// More rows than one INSERT statement carries, to cross a batch.
	many := make(map[rowKey]traffic.Traffic)
	for i := range batchRows + 3 {
		many[rowKey{60, clientN(i)}] = dbtest.Seeded(uint64(i))
	}
	tests := []struct {
		name   string
		writes [][]traffic.Row
		want   map[rowKey]traffic.Traffic
	}{
		{
			name: "same minute and client sum",
			writes: [][]traffic.Row{
				rows(map[rowKey]traffic.Traffic{{60, v4}: dbtest.Seeded(1)}),
				rows(map[rowKey]traffic.Traffic{{60, v4}: dbtest.Seeded(2)}),
			},
			want: map[rowKey]traffic.Traffic{{60, v4}: dbtest.Sum(1, 2)},
		},
		{
			name: "same minute and client twice in one write sum",
			writes: [][]traffic.Row{{
				{Start: time.Unix(60, 0), Client: v4, Traffic: dbtest.Seeded(1)},
				{Start: time.Unix(60, 0), Client: v4, Traffic: dbtest.Seeded(2)},
			}},
			want: map[rowKey]traffic.Traffic{{60, v4}: dbtest.Sum(1, 2)},
		},
		{
			name: "other minutes and clients stay apart",
			writes: [][]traffic.Row{
				rows(map[rowKey]traffic.Traffic{{60, v4}: dbtest.Seeded(1), {60, v6}: dbtest.Seeded(2)}),
				rows(map[rowKey]traffic.Traffic{{120, v4}: dbtest.Seeded(3), {120, traffic.Other}: dbtest.Seeded(4)}),
			},
			want: map[rowKey]traffic.Traffic{
				{60, v4}:             dbtest.Seeded(1),
				{60, v6}:             dbtest.Seeded(2),
				{120, v4}:            dbtest.Seeded(3),
				{120, traffic.Other}: dbtest.Seeded(4),
			},
		},
		{name: "batches", writes: [][]traffic.Row{rows(many)}, want: many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			for _, w := range tt.writes {
				if err := st.Write(t.Context(), w); err != nil {
					t.Fatal(err)
				}
			}
			checkRows(t, st, tt.want)
		})
	}
}

// Writing nothing touches nothing: it succeeds at once even while another
// connection holds the file's write lock, where any statement would wait
// for it and fail.
func TestWriteNothing(t *testing.T) {
	st := openStore(t)
	defer dbtest.LockFile(t, st.path)()
	start := time.Now()
	for name, write := range map[string]func() error{
		"Write(nil)":       func() error { return st.Write(t.Context(), nil) },
		"Write(empty)":     func() error { return st.Write(t.Context(), []traffic.Row{}) },
		"SaveNames(nil)":   func() error { return st.SaveNames(t.Context(), nil) },
		"SaveNames(empty)": func() error { return st.SaveNames(t.Context(), []traffic.Name{}) },
	} {
		if err := write(); err != nil {
			t.Errorf("%s on a locked file: %v", name, err)
		}
	}
	if took := time.Since(start); took >= lockWait {
		t.Errorf("writing nothing took %v: it waited for the lock", took)
	}
	checkRows(t, st, nil)
}

// Names are stored once per address, the latest winning, and show in the
// view's dns column on every row of the address; a name of an IPv4-mapped
// address is the IPv4 client's.
func TestSaveNames(t *testing.T) {
	st := openStore(t)
	a, b := clientOf("192.0.2.1"), clientOf("2001:db8::2")
	name := func(c traffic.Client, dns string, found int64) traffic.Name {
		return traffic.Name{Addr: c.Addr(), DNS: dns, Found: time.Unix(found, 0)}
	}
	write(t, st, map[rowKey]traffic.Traffic{{60, a}: dbtest.Seeded(1), {60, b}: dbtest.Seeded(2), {60, traffic.Other}: dbtest.Seeded(3)})
	write(t, st, map[rowKey]traffic.Traffic{{120, a}: dbtest.Seeded(4)})
	for _, names := range [][]traffic.Name{
		{name(a, "old.example", 100)},
		{{Addr: netip.AddrFrom16(a.Addr().As16()), DNS: "a.example", Found: time.Unix(200, 0)}, name(b, "b.example", 200)},
	} {
		if err := st.SaveNames(t.Context(), names); err != nil {
			t.Fatal(err)
		}
	}
	q, err := st.db.Query("SELECT timestamp, ip, dns FROM traffic ORDER BY timestamp, ip")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var got []string
	for q.Next() {
		var at int64
		var ip, dns string
		if err := q.Scan(&at, &ip, &dns); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %q", at, ip, dns))
	}
	want := []string{`60 192.0.2.1 "a.example"`, `60 2001:db8::2 "b.example"`, `60 other ""`, `120 192.0.2.1 "a.example"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("traffic rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkNames(t, st, map[string]string{"192.0.2.1": "a.example", "2001:db8::2": "b.example"})
	var updated int64
	if err := st.db.QueryRow("SELECT updated FROM names WHERE ip = '192.0.2.1'").Scan(&updated); err != nil || updated != 200 {
		t.Errorf("name of 192.0.2.1 updated at %d (%v), want 200, when the latest was found", updated, err)
	}
}

func TestWriteLockedFile(t *testing.T) {
	st := openStore(t)
	unlock := dbtest.LockFile(t, st.path)
	defer unlock()
	err := st.Write(t.Context(), rows(map[rowKey]traffic.Traffic{{60, clientOf("192.0.2.1")}: dbtest.Seeded(1)}))
	if err == nil {
		t.Fatal("write to a locked file succeeded")
	}
	want := "flush 1 rows to " + st.path + ": database is locked"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start with %q", err, want)
	}
	err = st.SaveNames(t.Context(), []traffic.Name{{Addr: netip.MustParseAddr("192.0.2.1"), DNS: "a.example", Found: time.Unix(60, 0)}})
	if want := "store names in " + st.path + ": database is locked"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("SaveNames on a locked file = %v, want an error starting with %q", err, want)
	}
}

// Consume writes a period's rows, then rolls up the hours closed by its
// end. A write that fails is returned with nothing written, so the same
// period can come again. A rollup that fails is logged once per outage
// and retried with the next period, never returned: its rows are written,
// and a caller that retried them would count them twice.
func TestConsume(t *testing.T) {
	var logs syncbuf.Buffer
	var now time.Time // the end of the latest period, as the daemon's clock
	st := openWith(t, filepath.Join(t.TempDir(), "traffic.db"), Options{Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
	a, b := clientOf("192.0.2.1"), clientOf("2001:db8::1")
	truth := make(map[rowKey]traffic.Traffic)
	seed := uint64(0)
	// period returns the rows of [from, to): a row every ten minutes for
	// two clients and Other.
	period := func(from, to time.Time) traffic.Period {
		p := traffic.Period{Start: from, End: to}
		for m := from; m.Before(to); m = m.Add(10 * time.Minute) {
			for _, c := range []traffic.Client{a, b, traffic.Other} {
				seed++
				p.Rows = append(p.Rows, traffic.Row{Start: m, Client: c, Traffic: dbtest.Seeded(seed)})
			}
		}
		return p
	}
	consume := func(p traffic.Period) error {
		t.Helper()
		now = p.End
		err := st.Consume(t.Context(), p)
		if err == nil {
			for _, r := range p.Rows {
				truth[rowKey{r.Start.Unix(), r.Client}] = r.Traffic
			}
		}
		return err
	}
	// check fails unless every row consumed is stored once and the hours
	// are rolled up to until.
	check := func(until time.Time) {
		t.Helper()
		checkRows(t, st, truth)
		if st.state.hourlyUntil != until.Unix() {
			t.Errorf("rolled up to %s, want %s", show(st.state.hourlyUntil), show(until.Unix()))
		}
		checkTable(t, st, Hours, groupBy(truth, Hours, 0, until.Unix()))
	}
	const (
		rollupsFail    = `level=WARN msg="cannot roll up or apply retention; retrying every flush"`
		rollupsRecover = `level=INFO msg="rolling up again"`
	)

	if err := consume(period(t0, t0.Add(90*time.Minute))); err != nil {
		t.Fatal(err)
	}
	check(t0.Add(time.Hour))

	p := period(t0.Add(90*time.Minute), t0.Add(2*time.Hour))
	unlock := dbtest.LockFile(t, st.path)
	err := consume(p)
	unlock()
	if want := fmt.Sprintf("flush %d rows to %s: database is locked", len(p.Rows), st.path); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Consume on a locked file = %v, want an error starting with %q", err, want)
	}
	check(t0.Add(time.Hour)) // nothing written, nothing rolled up
	if err := consume(p); err != nil {
		t.Fatalf("the same period again: %v", err)
	}
	check(t0.Add(2 * time.Hour))

	rawExec(t, st.path, "CREATE TRIGGER rollups_fail BEFORE UPDATE ON rollup_state BEGIN SELECT RAISE(ABORT, 'rollups broken'); END")
	for i, end := range []time.Time{t0.Add(3 * time.Hour), t0.Add(4 * time.Hour)} {
		if err := consume(period(end.Add(-time.Hour), end)); err != nil {
			t.Fatalf("Consume with rollups failing = %v, want nil: the rows are written", err)
		}
		check(t0.Add(2 * time.Hour))
		if n := strings.Count(logs.String(), rollupsFail); n != 1 || !strings.Contains(logs.String(), "rollups broken") {
			t.Errorf("after %d failed rollups, %d lines say so, want 1 with the cause:\n%s", i+1, n, logs.String())
		}
	}

	rawExec(t, st.path, "DROP TRIGGER rollups_fail")
	if err := consume(period(t0.Add(4*time.Hour), t0.Add(4*time.Hour+30*time.Minute))); err != nil {
		t.Fatal(err)
	}
	check(t0.Add(4 * time.Hour))
	if n, m := strings.Count(logs.String(), rollupsFail), strings.Count(logs.String(), rollupsRecover); n != 1 || m != 1 {
		t.Errorf("%d lines say rollups fail and %d that they recovered, want 1 each:\n%s", n, m, logs.String())
	}
}
