package agg

import (
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
)

func TestOpenCreatesSchema(t *testing.T) {
	st := openStore(t)

	info, err := os.Stat(filepath.Dir(st.path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o750 {
		t.Errorf("directory mode = %v, want 0750", perm)
	}

	// Users' queries depend on these names: spelled out here on purpose.
	want := []string{
		"timestamp INTEGER notnull=1 default= pk=1",
		"ip TEXT notnull=1 default= pk=2",
		"dns TEXT notnull=1 default='' pk=0",
	}
	for _, name := range []string{
		"consensus_up", "consensus_down", "siamux_up", "siamux_down", "quic_up", "quic_down",
		"consensus_up_packets", "consensus_down_packets", "siamux_up_packets",
		"siamux_down_packets", "quic_up_packets", "quic_down_packets",
	} {
		want = append(want, name+" INTEGER notnull=1 default=0 pk=0")
	}
	rows, err := st.db.Query("SELECT name, type, \"notnull\", coalesce(dflt_value, ''), pk FROM pragma_table_info('traffic')")
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
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("columns:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for pragma, want := range map[string]string{"user_version": "1", "journal_mode": "wal"} {
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
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file not where asked: %v", err)
	}
}

func TestOpenExisting(t *testing.T) {
	tests := []struct {
		name    string
		prepare string // run on the file before Open
		wantErr string // "" when Open must succeed
	}{
		{name: "current version", prepare: createTableSQL + "; PRAGMA user_version = 1"},
		{name: "earlier tool", prepare: "CREATE TABLE traffic (timestamp INTEGER, ip TEXT)", wantErr: "no schema version"},
		{name: "newer version", prepare: "PRAGMA user_version = 2", wantErr: "schema version 2 is newer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "traffic.db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tt.prepare); err != nil {
				t.Fatal(err)
			}
			db.Close()

			st, err := Open(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				st.Close()
				return
			}
			if err == nil {
				st.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open error = %q, want it to name %s and contain %q", err, path, tt.wantErr)
			}
		})
	}
}

func TestWriteAdds(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	sum := func(a, b bpfgo.Traffic) bpfgo.Traffic { a.Add(&b); return a }
	tests := []struct {
		name   string
		writes []map[rowKey]*row
		want   map[rowKey]row
	}{
		{
			name: "same minute and client sum",
			writes: []map[rowKey]*row{
				{{60, v4}: {traffic: traffic(1)}},
				{{60, v4}: {traffic: traffic(2)}},
			},
			want: map[rowKey]row{{60, v4}: {traffic: sum(traffic(1), traffic(2))}},
		},
		{
			name: "other minutes and clients stay apart",
			writes: []map[rowKey]*row{
				{{60, v4}: {traffic: traffic(1)}, {60, v6}: {traffic: traffic(2)}},
				{{120, v4}: {traffic: traffic(3)}, {120, netip.Addr{}}: {traffic: traffic(4)}},
			},
			want: map[rowKey]row{
				{60, v4}:            {traffic: traffic(1)},
				{60, v6}:            {traffic: traffic(2)},
				{120, v4}:           {traffic: traffic(3)},
				{120, netip.Addr{}}: {traffic: traffic(4)},
			},
		},
		{
			name: "a name fills an empty one and is never erased",
			writes: []map[rowKey]*row{
				{{60, v4}: {traffic: traffic(1)}},
				{{60, v4}: {dns: "a.example", traffic: traffic(1)}},
				{{60, v4}: {traffic: traffic(1)}},
			},
			want: map[rowKey]row{{60, v4}: {dns: "a.example", traffic: sum(sum(traffic(1), traffic(1)), traffic(1))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			for _, w := range tt.writes {
				if err := st.write(t.Context(), w, nil); err != nil {
					t.Fatal(err)
				}
			}
			checkRows(t, st, tt.want)
		})
	}
}

func TestWriteLockedNamesFile(t *testing.T) {
	st := openStore(t)
	unlock := lockStore(t, st)
	defer unlock()
	err := st.write(t.Context(), map[rowKey]*row{{60, netip.MustParseAddr("192.0.2.1")}: {traffic: traffic(1)}}, nil)
	if err == nil {
		t.Fatal("write to a locked file succeeded")
	}
	want := "flush 1 rows to " + st.path + ": database is locked"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start with %q", err, want)
	}
}

func TestTotalsSince(t *testing.T) {
	st := openStore(t)
	small := netip.MustParseAddr("192.0.2.1")
	big := netip.MustParseAddr("2001:db8::1")
	err := st.write(t.Context(), map[rowKey]*row{
		{0, big}:             {traffic: traffic(1000)}, // before since: left out
		{60, small}:          {traffic: traffic(1)},
		{120, small}:         {dns: "small.example", traffic: traffic(2)},
		{120, big}:           {traffic: traffic(50)},
		{180, netip.Addr{}}:  {traffic: traffic(9)},
		{3600, netip.Addr{}}: {traffic: traffic(1)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.TotalsSince(t.Context(), time.Unix(60, 0))
	if err != nil {
		t.Fatal(err)
	}
	sum := func(seeds ...uint64) bpfgo.Traffic {
		var t bpfgo.Traffic
		for _, s := range seeds {
			x := traffic(s)
			t.Add(&x)
		}
		return t
	}
	want := []ClientTotal{
		{Client: big, Traffic: sum(50)},
		{Overflow: true, Traffic: sum(9, 1)},
		{Client: small, DNS: "small.example", Traffic: sum(1, 2)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d clients %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("client %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// The live printer reads while the aggregator holds the write lock; WAL must
// let it through at once with the committed rows.
func TestTotalsSinceWhileLocked(t *testing.T) {
	st := openStore(t)
	client := netip.MustParseAddr("192.0.2.1")
	if err := st.write(t.Context(), map[rowKey]*row{{60, client}: {traffic: traffic(1)}}, nil); err != nil {
		t.Fatal(err)
	}
	unlock := lockStore(t, st)
	defer unlock()
	got, err := st.TotalsSince(t.Context(), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Traffic != traffic(1) {
		t.Errorf("totals = %+v, want one client with traffic(1)", got)
	}
}
