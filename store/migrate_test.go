package store

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/back2basic/collector/traffic"
)

// The earlier tool's table as its storage package created it: a row per
// insert, the host's own name on each, nullable columns, no key.
const earlierToolTable = `CREATE TABLE IF NOT EXISTS traffic (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hostname TEXT,
        ip TEXT,
        dns TEXT,
        consensus_up INTEGER,
        consensus_down INTEGER,
        siamux_up INTEGER,
        siamux_down INTEGER,
        quic_up INTEGER,
        quic_down INTEGER,
        timestamp INTEGER
    );`

// version1Table is this project's first schema, as released (user_version 1).
const version1Table = `CREATE TABLE traffic (
	timestamp INTEGER NOT NULL,
	ip TEXT NOT NULL,
	dns TEXT NOT NULL DEFAULT '',
	consensus_up INTEGER NOT NULL DEFAULT 0,
	consensus_down INTEGER NOT NULL DEFAULT 0,
	siamux_up INTEGER NOT NULL DEFAULT 0,
	siamux_down INTEGER NOT NULL DEFAULT 0,
	quic_up INTEGER NOT NULL DEFAULT 0,
	quic_down INTEGER NOT NULL DEFAULT 0,
	consensus_up_packets INTEGER NOT NULL DEFAULT 0,
	consensus_down_packets INTEGER NOT NULL DEFAULT 0,
	siamux_up_packets INTEGER NOT NULL DEFAULT 0,
	siamux_down_packets INTEGER NOT NULL DEFAULT 0,
	quic_up_packets INTEGER NOT NULL DEFAULT 0,
	quic_down_packets INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (timestamp, ip)
) WITHOUT ROWID`

// oldRow is a row as an earlier release wrote it; nil counters are NULL.
type oldRow struct {
	at      int64
	ip, dns string
	bytes   [6]any // consensus_up, consensus_down, siamux_up, siamux_down, quic_up, quic_down
	packets [6]int64
}

var (
	oldA = clientOf("192.0.2.1")
	oldB = clientOf("2001:db8::1")
)

// oldRows has what upgrades must keep: two rows of one minute and client
// (the earlier tool restarting within a minute), a NULL counter, and a name
// that changed.
var oldRows = []oldRow{
	{600, "192.0.2.1", "", [6]any{1, 2, 300, 400, 5, 6}, [6]int64{1, 1, 3, 4, 1, 1}},
	{600, "192.0.2.1", "a.example", [6]any{10, 20, 3000, 4000, 50, nil}, [6]int64{1, 1, 3, 4, 1, 0}},
	{660, "2001:db8::1", "old.example", [6]any{0, 0, 70, 80, 0, 0}, [6]int64{0, 0, 1, 1, 0, 0}},
	{720, "2001:db8::1", "new.example", [6]any{0, 0, 7, 8, 0, 0}, [6]int64{0, 0, 1, 1, 0, 0}},
	{720, "other", "", [6]any{9, 9, 9, 9, 9, 9}, [6]int64{1, 1, 1, 1, 1, 1}},
}

// traffic returns the row's counters, with the packets when the release
// counted them.
func (r oldRow) traffic(packets bool) traffic.Traffic {
	var t traffic.Traffic
	for i, c := range columns[:6] {
		if v, ok := r.bytes[i].(int); ok {
			*c.tally(&t) = uint64(v)
		}
		if packets {
			*columns[6+i].tally(&t) = uint64(r.packets[i])
		}
	}
	return t
}

// wantFromOld returns the minute rows the upgrade must give from oldRows.
func wantFromOld(t *testing.T, packets bool) map[rowKey]traffic.Traffic {
	t.Helper()
	want := make(map[rowKey]traffic.Traffic)
	for _, r := range oldRows {
		client, err := traffic.ParseClient(r.ip)
		if err != nil {
			t.Fatal(err)
		}
		k := rowKey{r.at, client}
		total, add := want[k], r.traffic(packets)
		total.Add(&add)
		want[k] = total
	}
	return want
}

// sqlValue writes v as an SQL literal.
func sqlValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return fmt.Sprint(v)
}

func TestUpgrade(t *testing.T) {
	tests := []struct {
		name    string
		create  string
		insert  func(r oldRow) string
		packets bool // the release counted packets
	}{
		{
			name:   "earlier tool",
			create: earlierToolTable,
			insert: func(r oldRow) string {
				return fmt.Sprintf(`INSERT INTO traffic (hostname, ip, dns, consensus_up, consensus_down, siamux_up, siamux_down, quic_up, quic_down, timestamp)
VALUES ('sia-host-1', %s, %s, %s, %d)`, sqlValue(r.ip), sqlValue(r.dns), joinValues(r.bytes[:]), r.at)
			},
		},
		{
			name:   "earlier tool, byte columns only",
			create: "CREATE TABLE traffic (timestamp INTEGER, ip TEXT, dns TEXT, consensus_up INTEGER, consensus_down INTEGER, siamux_up INTEGER, siamux_down INTEGER, quic_up INTEGER, quic_down INTEGER)",
			insert: func(r oldRow) string {
				return fmt.Sprintf("INSERT INTO traffic VALUES (%d, %s, %s, %s)", r.at, sqlValue(r.ip), sqlValue(r.dns), joinValues(r.bytes[:]))
			},
		},
		{
			name:   "earliest builds, columns named by port",
			create: strings.NewReplacer("consensus_up", "up_9981", "consensus_down", "down_9981", "siamux_up", "up_9984_tcp", "siamux_down", "down_9984_tcp", "quic_up", "up_9984_udp", "quic_down", "down_9984_udp").Replace(earlierToolTable),
			insert: func(r oldRow) string {
				return fmt.Sprintf(`INSERT INTO traffic (hostname, ip, dns, up_9981, down_9981, up_9984_tcp, down_9984_tcp, up_9984_udp, down_9984_udp, timestamp)
VALUES ('sia-host-1', %s, %s, %s, %d)`, sqlValue(r.ip), sqlValue(r.dns), joinValues(r.bytes[:]), r.at)
			},
		},
		{
			name:    "version 1",
			create:  version1Table + "; PRAGMA user_version = 1",
			packets: true,
			insert: func(r oldRow) string {
				// Version 1 summed a minute's rows on insert and filled
				// a name in without erasing one.
				return fmt.Sprintf(`INSERT INTO traffic VALUES (%d, %s, %s, %s, %s)
ON CONFLICT (timestamp, ip) DO UPDATE SET dns = CASE WHEN excluded.dns = '' THEN dns ELSE excluded.dns END, %s`,
					r.at, sqlValue(r.ip), sqlValue(r.dns), joinValues(r.bytes[:]), joinValues(r.packets[:]),
					columnList("%s = %s + excluded.%s", ", "))
			},
		},
	}
	fresh := schemaOf(t, openStore(t).db)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "traffic.db")
			stmts := []string{tt.create}
			for _, r := range oldRows {
				// NULL counters only ever came from the earlier tool.
				if tt.packets {
					for i, b := range r.bytes {
						if b == nil {
							r.bytes[i] = 0
						}
					}
				}
				stmts = append(stmts, tt.insert(r))
			}
			rawExec(t, path, stmts...)

			st := openPath(t, path)
			checkRows(t, st, wantFromOld(t, tt.packets))
			if got := schemaOf(t, st.db); !reflect.DeepEqual(got, fresh) {
				t.Errorf("upgraded schema:\n%v\nwant the one a new file gets:\n%v", got, fresh)
			}
			checkNames(t, st, map[string]string{"192.0.2.1": "a.example", "2001:db8::1": "new.example"})
			// The query users have run against the earlier tool.
			var dns string
			var up int64
			if err := st.db.QueryRow("SELECT dns, SUM(siamux_up) FROM traffic WHERE ip = '192.0.2.1' GROUP BY ip").Scan(&dns, &up); err != nil {
				t.Fatal(err)
			}
			if dns != "a.example" || up != 3300 {
				t.Errorf("SELECT dns, SUM(siamux_up) FROM traffic = %q, %d; want a.example, 3300", dns, up)
			}
		})
	}
}

func joinValues[T any](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = sqlValue(v)
	}
	return strings.Join(s, ", ")
}

// checkNames fails unless the names table maps addresses to want.
func checkNames(t *testing.T, st *Store, want map[string]string) {
	t.Helper()
	rows, err := st.db.Query("SELECT ip, dns FROM names")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := make(map[string]string)
	for rows.Next() {
		var ip, dns string
		if err := rows.Scan(&ip, &dns); err != nil {
			t.Fatal(err)
		}
		got[ip] = dns
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}
}

// schemaOf describes every table and view of db by its columns.
func schemaOf(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	rows, err := db.Query("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' AND type IN ('table', 'view')")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var typ, name string
		if err := rows.Scan(&typ, &name); err != nil {
			t.Fatal(err)
		}
		names = append(names, typ+" "+name)
	}
	rows.Close()
	out := make(map[string][]string)
	for _, n := range names {
		out[n] = tableInfo(t, db, strings.SplitN(n, " ", 2)[1])
	}
	return out
}

// An upgrade that cannot finish leaves the file as it was.
func TestUpgradeFailsWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	rawExec(t, path, earlierToolTable,
		"INSERT INTO traffic (hostname, ip, dns, consensus_up, consensus_down, siamux_up, siamux_down, quic_up, quic_down, timestamp) VALUES ('h', '192.0.2.1', '', 1, 2, 3, 4, 5, 6, 600)",
		"INSERT INTO traffic (hostname, ip, dns, consensus_up, consensus_down, siamux_up, siamux_down, quic_up, quic_down, timestamp) VALUES ('h', NULL, '', 1, 2, 3, 4, 5, 6, 660)")
	st, err := Open(path, Options{Log: discard})
	if err == nil {
		st.Close()
		t.Fatal("an upgrade with a row without an address succeeded")
	}
	if want := "upgrade schema from version 0 to 1: "; !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version, n int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM traffic WHERE hostname = 'h'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if version != 0 || n != 2 {
		t.Errorf("after the failed upgrade: version %d, %d rows of the earlier tool; want 0 and 2", version, n)
	}
}
