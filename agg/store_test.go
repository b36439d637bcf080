package agg

import (
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/back2basic/collector/bpfgo"
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

	for pragma, want := range map[string]string{"user_version": "2", "journal_mode": "wal"} {
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
	tests := []struct {
		name     string
		prepare  string // run on the file before opening; "" for no file
		readOnly bool
		wantErr  string
	}{
		{name: "newer version", prepare: "PRAGMA user_version = 3", wantErr: "schema version 3 is newer than this collector's (2)"},
		{name: "not ours", prepare: "CREATE TABLE traffic (when_ TEXT)", wantErr: "table traffic has no column timestamp"},
		{name: "read-only, no file", readOnly: true, wantErr: "no such file"},
		{name: "read-only, older version", prepare: "PRAGMA user_version = 1", readOnly: true,
			wantErr: "schema version 1, this collector reads 2: start the daemon once to upgrade the file"},
		{name: "read-only, newer version", prepare: "PRAGMA user_version = 3", readOnly: true, wantErr: "schema version 3, this collector reads 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "traffic.db")
			if tt.prepare != "" {
				rawExec(t, path, tt.prepare)
			}
			open := func(path string) (*Store, error) { return Open(path, discard) }
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
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	// More rows than one INSERT statement carries, to cross a batch.
	many := make(map[rowKey]bpfgo.Traffic)
	for i := range batchRows + 3 {
		many[rowKey{60, addrN(i)}] = traffic(uint64(i))
	}
	tests := []struct {
		name   string
		writes []map[rowKey]bpfgo.Traffic
		want   map[rowKey]bpfgo.Traffic
	}{
		{
			name: "same minute and client sum",
			writes: []map[rowKey]bpfgo.Traffic{
				{{60, v4}: traffic(1)},
				{{60, v4}: traffic(2)},
			},
			want: map[rowKey]bpfgo.Traffic{{60, v4}: sum(1, 2)},
		},
		{
			name: "other minutes and clients stay apart",
			writes: []map[rowKey]bpfgo.Traffic{
				{{60, v4}: traffic(1), {60, v6}: traffic(2)},
				{{120, v4}: traffic(3), {120, netip.Addr{}}: traffic(4)},
			},
			want: map[rowKey]bpfgo.Traffic{
				{60, v4}:            traffic(1),
				{60, v6}:            traffic(2),
				{120, v4}:           traffic(3),
				{120, netip.Addr{}}: traffic(4),
			},
		},
		{name: "batches", writes: []map[rowKey]bpfgo.Traffic{many}, want: many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			for _, w := range tt.writes {
				if err := st.write(t.Context(), rows(w), nil); err != nil {
					t.Fatal(err)
				}
			}
			checkRows(t, st, tt.want)
		})
	}
}

// Names are stored once per address, the latest winning, and show in the
// view's dns column on every row of the address.
func TestWriteNames(t *testing.T) {
	st := openStore(t)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::2")
	writes := []struct {
		rows  map[rowKey]bpfgo.Traffic
		names map[netip.Addr]name
	}{
		{rows: map[rowKey]bpfgo.Traffic{{60, a}: traffic(1), {60, b}: traffic(2), {60, netip.Addr{}}: traffic(3)}},
		{rows: map[rowKey]bpfgo.Traffic{{120, a}: traffic(4)}, names: map[netip.Addr]name{a: {"old.example", 100}}},
		{names: map[netip.Addr]name{a: {"a.example", 200}, b: {"b.example", 200}}},
	}
	for _, w := range writes {
		if err := st.write(t.Context(), rows(w.rows), w.names); err != nil {
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
	var names int
	if err := st.db.QueryRow("SELECT count(*) FROM names").Scan(&names); err != nil || names != 2 {
		t.Errorf("names holds %d rows (%v), want one per named address", names, err)
	}
}

func TestWriteLockedNamesFile(t *testing.T) {
	st := openStore(t)
	unlock := lockStore(t, st)
	defer unlock()
	err := st.write(t.Context(), rows(map[rowKey]bpfgo.Traffic{{60, netip.MustParseAddr("192.0.2.1")}: traffic(1)}), nil)
	if err == nil {
		t.Fatal("write to a locked file succeeded")
	}
	want := "flush 1 rows to " + st.path + ": database is locked"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start with %q", err, want)
	}
}
