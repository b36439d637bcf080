package store

import (
	"cmp"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/traffic"
)

// seqs returns the seq of every row of table: that of the last write to
// its time. A row whose time write_log lacks is left out.
func seqs(t *testing.T, st *Store, table Table) map[rowKey]int64 {
	t.Helper()
	rows, err := st.db.Query(fmt.Sprintf("SELECT r.timestamp, r.ip, w.seq FROM %s AS r JOIN write_log AS w ON w.tbl = ? AND w.timestamp = r.timestamp", table), table.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := make(map[rowKey]int64)
	for rows.Next() {
		var (
			at, seq int64
			ip      string
		)
		if err := rows.Scan(&at, &ip, &seq); err != nil {
			t.Fatal(err)
		}
		client, err := traffic.ParseClient(ip)
		if err != nil {
			t.Fatal(err)
		}
		out[rowKey{at, client}] = seq
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// lastWrite returns the number of the last write.
func lastWrite(t *testing.T, st *Store) int64 {
	t.Helper()
	var last int64
	if err := st.db.QueryRow("SELECT seq FROM write_seq").Scan(&last); err != nil {
		t.Fatal(err)
	}
	return last
}

// checkWrite fails unless the write just done took a number above before
// and gave it to exactly the rows of table in changed, leaving the seq of
// every other row as it was in old.
func checkWrite(t *testing.T, st *Store, table Table, before int64, old map[rowKey]int64, changed ...rowKey) {
	t.Helper()
	last := lastWrite(t, st)
	if last <= before {
		t.Errorf("write_seq = %d after a write, want above %d", last, before)
	}
	got := seqs(t, st, table)
	want := maps.Clone(old)
	for _, k := range changed {
		want[k] = last
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s seqs after write %d: %v, want %v", table, last, got, want)
	}
}

// Every write takes a number above all before and gives it to the times it
// changes, so to every row of those times, leaving the others alone.
func TestWritesNumberTimes(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	a, b := clientOf("192.0.2.1"), clientOf("192.0.2.2")
	ka, kb := rowKey{at(0, 10, 0), a}, rowKey{at(0, 11, 0), b}
	none := map[rowKey]int64{}

	before := lastWrite(t, st)
	write(t, st, map[rowKey]traffic.Traffic{ka: dbtest.Seeded(1), kb: dbtest.Seeded(2)})
	checkWrite(t, st, Minutes, before, none, ka, kb)

	// Late traffic of a's minute: a's minute changes, b's does not.
	before, old := lastWrite(t, st), seqs(t, st, Minutes)
	write(t, st, map[rowKey]traffic.Traffic{ka: dbtest.Seeded(3)})
	checkWrite(t, st, Minutes, before, old, ka)

	// The rollups are a write of their own.
	before = lastWrite(t, st)
	if err := st.maintain(ctx, time.Unix(at(1, 1, 0), 0), time.Unix(at(1, 1, 0), 0), Retention{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	dayA, dayB := rowKey{at(0, 0, 0), a}, rowKey{at(0, 0, 0), b}
	checkWrite(t, st, Hours, before, none, ka, kb)
	checkWrite(t, st, Days, before, none, dayA, dayB)

	// A late row of a rolled-up hour changes the rollup rows it adds to:
	// b's hour, not a's, and the day both are in.
	before = lastWrite(t, st)
	oldHours, oldDays := seqs(t, st, Hours), seqs(t, st, Days)
	write(t, st, map[rowKey]traffic.Traffic{{at(0, 11, 5), b}: dbtest.Seeded(4)})
	checkWrite(t, st, Hours, before, oldHours, kb)
	checkWrite(t, st, Days, before, oldDays, dayA, dayB)
}

// readChanges reads every row of table written after from, limit rows at a
// time, checking they come in the order written, and returns them with the
// last batch.
func readChanges(t *testing.T, st *Store, table Table, from Mark, limit int) (map[rowKey]traffic.Traffic, ChangeBatch) {
	t.Helper()
	written := seqs(t, st, table)
	got := make(map[rowKey]traffic.Traffic)
	prev := from
	for {
		b, err := st.Changes(t.Context(), table, from, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Rows {
			k := rowKey{r.Start.Unix(), r.Client}
			m := Mark{written[k], k.start, k.client.String()}
			if !markBefore(prev, m) || markBefore(b.Next, m) {
				t.Errorf("%s: row %v (%v) after %v in a batch up to %v", table, k, m, prev, b.Next)
			}
			prev = m
			if _, ok := got[k]; ok {
				t.Errorf("%s: row %v read twice", table, k)
			}
			got[k] = r.Traffic
		}
		if markBefore(b.Next, from) {
			t.Fatalf("%s: Next went back from %v to %v", table, from, b.Next)
		}
		from = b.Next
		if b.Done {
			return got, b
		}
	}
}

// markBefore reports whether a comes before b.
func markBefore(a, b Mark) bool {
	return cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.at, b.at), strings.Compare(a.ip, b.ip)) < 0
}

// inWindow returns the rows of rows from since on.
func inWindow(rows map[rowKey]traffic.Traffic, since time.Time) map[rowKey]traffic.Traffic {
	out := make(map[rowKey]traffic.Traffic)
	for k, tr := range rows {
		if since.IsZero() || k.start >= since.Unix() {
			out[k] = tr
		}
	}
	return out
}

// Changes pages through every row of a table's window, then only through
// what was written since.
func TestChanges(t *testing.T) {
	st := openStore(t)
	buildHistory(t, st)
	wantSince := map[Table]time.Time{
		Minutes: time.Unix(historyHorizons.minuteSince, 0),
		Hours:   time.Unix(historyHorizons.hourlySince, 0),
		Days:    {},
	}
	next := make(map[Table]Mark)
	for _, table := range []Table{Minutes, Hours, Days} {
		// A batch size that cuts writes in parts.
		got, last := readChanges(t, st, table, Mark{}, 97)
		if !last.Since.Equal(wantSince[table]) {
			t.Errorf("%s: window since %v, want %v", table, last.Since, wantSince[table])
		}
		dbtest.CheckSame(t, table.String(), got, inWindow(readRows(t, st, table), last.Since))
		n, err := st.Pending(t.Context(), table, Mark{})
		if err != nil {
			t.Fatal(err)
		}
		if n != len(got) {
			t.Errorf("%s: %d rows pending from the start, want %d", table, n, len(got))
		}
		next[table] = last.Next
	}
	// The late minute of buildHistory is before the minutes' window: its
	// traffic is in the rollups only.
	if _, ok := readRows(t, st, Minutes)[rowKey{lateMinute, oldA}]; !ok {
		t.Fatal("the late minute row is not stored; the test lost its point")
	}

	k := rowKey{historyEnd - 60, oldA}
	write(t, st, map[rowKey]traffic.Traffic{k: dbtest.Seeded(77)})
	for _, table := range []Table{Minutes, Hours, Days} {
		got, _ := readChanges(t, st, table, next[table], 5)
		n, err := st.Pending(t.Context(), table, next[table])
		if err != nil {
			t.Fatal(err)
		}
		// Every row of k's minute, the minute written; the hour is
		// not rolled up yet.
		want := map[rowKey]traffic.Traffic{}
		if table == Minutes {
			for rk, tr := range readRows(t, st, Minutes) {
				if rk.start == k.start {
					want[rk] = tr
				}
			}
		}
		dbtest.CheckSame(t, table.String()+" written since", got, want)
		if n != len(want) {
			t.Errorf("%s: %d rows pending, want %d", table, n, len(want))
		}
	}
}

func TestSyncCursor(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	check := func(st *Store, target string, table Table, want Mark) {
		t.Helper()
		got, err := st.SyncCursor(ctx, target, table)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("cursor of %s at %s = %v, want %v", table, target, got, want)
		}
	}
	check(st, "a", Minutes, Mark{})
	far, near := Mark{10, 600, "192.0.2.1"}, Mark{10, 600, "192.0.2.0"}
	for _, save := range []struct {
		target   string
		table    Table
		from, to Mark
	}{
		{"a", Minutes, Mark{}, near},
		{"a", Minutes, near, far},
		{"a", Minutes, near, Mark{11, 0, "other"}}, // read before the move to far: out of date
		{"a", Hours, Mark{}, near},
		{"b", Minutes, Mark{}, Mark{1, 60, "other"}},
	} {
		if err := st.SaveSyncCursor(ctx, save.target, save.table, save.from, save.to); err != nil {
			t.Fatal(err)
		}
	}
	check(st, "a", Minutes, far)
	check(st, "a", Hours, near)
	check(st, "a", Days, Mark{})
	check(st, "b", Minutes, Mark{1, 60, "other"})

	// A reset moves a's cursors back; a copier that read before it
	// cannot move them on.
	if err := st.ResetSyncCursors(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSyncCursor(ctx, "a", Minutes, far, Mark{12, 0, "other"}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []Table{Minutes, Hours, Days} {
		check(st, "a", table, Mark{})
	}
	check(st, "b", Minutes, Mark{1, 60, "other"})
	if err := st.SaveSyncCursor(ctx, "a", Minutes, Mark{}, near); err != nil {
		t.Fatal(err)
	}

	// The cursor outlives the process.
	path := st.path
	st.Close()
	check(openPath(t, path), "a", Minutes, near)
}

func TestSyncState(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	for _, save := range [][3]string{{"a", "central", "x"}, {"a", "central", "y"}, {"b", "central", "z"}} {
		if err := st.SaveSyncState(ctx, save[0], save[1], save[2]); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range [][3]string{{"a", "central", "y"}, {"b", "central", "z"}, {"a", "claims", ""}} {
		if got, err := st.SyncState(ctx, want[0], want[1]); err != nil || got != want[2] {
			t.Errorf("SyncState(%s, %s) = %q, %v; want %q", want[0], want[1], got, err, want[2])
		}
	}
}

func TestMarkSpelledAndOrdered(t *testing.T) {
	marks := []Mark{{}, {1, 60, "192.0.2.1"}, {1, 60, "2001:db8::1"}, {1, 120, "192.0.2.1"}, {2, 0, "other"}}
	for i, m := range marks {
		got, err := ParseMark(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMark(%q) = %v, %v", m, got, err)
		}
		for j, o := range marks {
			if c := m.Compare(o); c != cmp.Compare(i, j) {
				t.Errorf("%v.Compare(%v) = %d", m, o, c)
			}
		}
	}
	for _, bad := range []string{"", "1/2", "x/2/other", "1/y/other"} {
		if _, err := ParseMark(bad); err == nil {
			t.Errorf("ParseMark(%q) succeeded", bad)
		}
	}
}

// The rows of a version 3 file are the first write: a copy gets each once.
func TestUpgradeNumbersRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	stmts := append(version2Schema(), createAlertsSQL, "PRAGMA user_version = 3")
	want := map[Table]map[rowKey]traffic.Traffic{Minutes: {}, Hours: {}, Days: {}}
	for i := range 30 {
		for _, table := range []Table{Minutes, Hours, Days} {
			k := rowKey{int64(i%5) * table.step(), clientN(i)}
			tr := dbtest.Seeded(uint64(i))
			want[table][k] = tr
			stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (timestamp, ip, %s) VALUES (%d, '%s', %s)",
				table, columnList("%s", ", "), k.start, k.client, joinValues(Counters(&tr))))
		}
	}
	rawExec(t, path, stmts...)

	st := openPath(t, path)
	if last := lastWrite(t, st); last != 1 {
		t.Errorf("write_seq = %d after the upgrade, want 1", last)
	}
	for table, rows := range want {
		for k, seq := range seqs(t, st, table) {
			if seq != 1 {
				t.Errorf("%s %v: seq %d after the upgrade, want 1", table, k, seq)
			}
		}
		got, _ := readChanges(t, st, table, Mark{}, 7)
		dbtest.CheckSame(t, table.String(), got, rows)
	}
	fresh := openStore(t)
	if got, want := schemaOf(t, st.db), schemaOf(t, fresh.db); !reflect.DeepEqual(got, want) {
		t.Errorf("upgraded schema:\n%v\nwant the one a new file gets:\n%v", got, want)
	}
	if got, want := seqIndexes(t, st), seqIndexes(t, fresh); !reflect.DeepEqual(got, []string{"write_log_order"}) || !reflect.DeepEqual(got, want) {
		t.Errorf("indexes on seq after the upgrade: %v; a new file has %v, want write_log_order alone", got, want)
	}
}

// seqIndexes lists the indexes on seq.
func seqIndexes(t *testing.T, st *Store) []string {
	t.Helper()
	rows, err := st.db.Query("SELECT i.name FROM sqlite_schema AS i, pragma_index_info(i.name) AS c WHERE i.type = 'index' AND c.name = 'seq' ORDER BY i.name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestTrafficOfCounters(t *testing.T) {
	tr := dbtest.Seeded(7)
	if got := TrafficOf(Counters(&tr)); got != tr {
		t.Errorf("TrafficOf(Counters(%v)) = %v", tr, got)
	}
}

// writtenRow is a row of a schema 6 file with the seq it carried.
type writtenRow struct {
	mark    Mark
	traffic traffic.Traffic
}

// readSchema6 reads the rows of table in a schema 6 file, each with its
// own seq, and the sync cursors and state kept there.
func readSchema6(t *testing.T, db *sql.DB, table Table) (rows map[rowKey]writtenRow, cursors map[string]Mark) {
	t.Helper()
	rows = make(map[rowKey]writtenRow)
	r, err := db.Query(fmt.Sprintf("SELECT seq, timestamp, ip, %s FROM %s", columnList("%s", ", "), table))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var m Mark
		values := make([]uint64, len(columns))
		dest := []any{&m.seq, &m.at, &m.ip}
		for i := range values {
			dest = append(dest, &values[i])
		}
		if err := r.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		client, err := traffic.ParseClient(m.ip)
		if err != nil {
			t.Fatal(err)
		}
		rows[rowKey{m.at, client}] = writtenRow{m, TrafficOf(values)}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	cursors = make(map[string]Mark)
	c, err := db.Query("SELECT target, seq, timestamp, ip FROM sync_cursor WHERE tbl = ?", table.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for c.Next() {
		var target string
		var m Mark
		if err := c.Scan(&target, &m.seq, &m.at, &m.ip); err != nil {
			t.Fatal(err)
		}
		cursors[target] = m
	}
	return rows, cursors
}

// A file of schema 6, written by the release that stamped each row with
// its seq (testdata/schema6.db: rows over many writes, late traffic added
// to rows already sent and to rows not yet, cursors in the middle of each
// table), keeps every row, cursor and sync state through the upgrade, and
// a copy that read on from its cursor ends up with every row: what was
// unsent at the upgrade, and again, unchanged, the sent rows of the times
// that unsent rows share.
func TestUpgradeFromRowSeqs(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "schema6.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "traffic.db")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	before := make(map[Table]map[rowKey]writtenRow)
	cursors := make(map[Table]Mark)
	for _, table := range []Table{Minutes, Hours, Days} {
		rows, marks := readSchema6(t, raw, table)
		if len(marks) != 1 || marks["postgres"] == (Mark{}) {
			t.Fatalf("%s: the file's cursors are %v; the test lost its point", table, marks)
		}
		before[table], cursors[table] = rows, marks["postgres"]
	}
	raw.Close()

	st := openPath(t, path)
	ctx := t.Context()
	for _, key := range []string{"central", "install"} {
		if v, err := st.SyncState(ctx, "postgres", key); err != nil || v == "" {
			t.Errorf("sync state %s after the upgrade: %q, %v", key, v, err)
		}
	}
	resentSome := false
	for _, table := range []Table{Minutes, Hours, Days} {
		cursor, err := st.SyncCursor(ctx, "postgres", table)
		if err != nil {
			t.Fatal(err)
		}
		if cursor != cursors[table] {
			t.Errorf("%s: cursor %v after the upgrade, want %v", table, cursor, cursors[table])
		}
		all, sent, unsent := map[rowKey]traffic.Traffic{}, map[rowKey]traffic.Traffic{}, map[rowKey]traffic.Traffic{}
		unsentTimes := map[int64]bool{}
		for k, r := range before[table] {
			all[k] = r.traffic
			if cursor.Compare(r.mark) < 0 {
				unsent[k] = r.traffic
				unsentTimes[k.start] = true
			} else {
				sent[k] = r.traffic
			}
		}
		if len(unsent) == 0 || len(sent) == 0 {
			t.Fatalf("%s: %d rows sent, %d unsent; the test lost its point", table, len(sent), len(unsent))
		}
		dbtest.CheckSame(t, table.String()+" after the upgrade", readRows(t, st, table), all)

		got, _ := readChanges(t, st, table, cursor, 3)
		n, err := st.Pending(ctx, table, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(got) {
			t.Errorf("%s: %d rows pending, %d read", table, n, len(got))
		}
		for k, tr := range unsent {
			if g, ok := got[k]; !ok || g != tr {
				t.Errorf("%s: unsent row %v read on from the cursor as %v (found %v), want %v", table, k, g, ok, tr)
			}
		}
		for k, tr := range got {
			if _, ok := unsent[k]; ok {
				continue
			}
			resentSome = true
			if !unsentTimes[k.start] || sent[k] != tr {
				t.Errorf("%s: sent row %v read again as %v; want only sent rows of times with unsent ones, unchanged (%v)", table, k, tr, sent[k])
			}
		}
		copied := maps.Clone(sent)
		maps.Copy(copied, got)
		dbtest.CheckSame(t, table.String()+" copied", copied, all)
	}
	if !resentSome {
		t.Error("no sent row shares a time with an unsent one; the test lost its point")
	}
	fresh := openStore(t)
	if got, want := schemaOf(t, st.db), schemaOf(t, fresh.db); !reflect.DeepEqual(got, want) {
		t.Errorf("upgraded schema:\n%v\nwant the one a new file gets:\n%v", got, want)
	}
}
