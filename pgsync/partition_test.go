package pgsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
)

// fingerprint counts the central rows of t where the condition holds and
// sums their counters: rows lost or changed change it.
func fingerprint(tb testing.TB, conn *pgx.Conn, t store.Table, where string, arg any) string {
	tb.Helper()
	var n, sum int64
	err := conn.QueryRow(tb.Context(), fmt.Sprintf("SELECT count(*), coalesce(sum(%s), 0) FROM %s WHERE %s",
		strings.Join(store.CounterNames(), " + "), t, where), arg).Scan(&n, &sum)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%d rows, %d bytes and packets", n, sum)
}

// since and ofHost are conditions of fingerprint.
const (
	since  = "timestamp >= $1"
	ofHost = "host = $1"
)

// longAgo is before every row.
var longAgo = time.Unix(0, 0)

// rowsBefore counts the central rows of t before until.
func rowsBefore(tb testing.TB, conn *pgx.Conn, t store.Table, until time.Time) int {
	tb.Helper()
	var n int
	if err := conn.QueryRow(tb.Context(), "SELECT count(*) FROM "+t.String()+" WHERE timestamp < $1", until).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// syncAt syncs h's rows as host at h's clock with cfg.
func syncAt(tb testing.TB, h *history, cfg Config) *Syncer {
	tb.Helper()
	s := newSyncer(tb, h.st, cfg)
	s.now = func() time.Time { return h.now }
	if _, err := s.SyncOnce(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return s
}

// A partition dropped by retention removes exactly the rows of its days:
// every row within retention is still there, no row before the first
// kept day is, and a host that keeps rows longer, or forever, holds the
// drop back for everyone.
func TestRetentionDropsWholeDaysPastIt(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	conn := server.Conn("fleet")
	var log syncbuf.Buffer
	a, b := steppedHistory(t, 6*24), steppedHistory(t, 2)
	forever := testConfig(url, "host-a", &log)
	syncAt(t, a, forever)
	verify(t, newSyncer(t, a.st, forever))
	syncAt(t, b, testConfig(url, "host-b", &log)) // keeps rows forever

	short := testConfig(url, "host-a", &log)
	short.Retention = store.Retention{Minutes: 2 * 24 * time.Hour, Hourly: 3 * 24 * time.Hour}
	before := map[store.Table]string{}
	for _, table := range partitionedTables {
		before[table] = fingerprint(t, conn, table, since, longAgo)
	}
	syncAt(t, a, short)
	for _, table := range partitionedTables {
		if got := fingerprint(t, conn, table, since, longAgo); got != before[table] {
			t.Errorf("%s: %s, before %s, while host-b keeps every row", table, got, before[table])
		}
	}

	server.Exec("fleet", "UPDATE collector_retention SET keep_days = 5 WHERE host = 'host-b'")
	firstKept, kept := map[store.Table]time.Time{}, map[store.Table]string{}
	for _, table := range partitionedTables {
		keep := time.Duration(short.keepDays(table)) * 24 * time.Hour
		if table == store.Minutes {
			keep = 5 * 24 * time.Hour // host-b's is longer
		}
		// The day holding the cut stays whole.
		firstKept[table] = dayOf(a.now.Add(-keep))
		kept[table] = fingerprint(t, conn, table, since, firstKept[table])
		if rowsBefore(t, conn, table, firstKept[table]) == 0 {
			t.Fatalf("%s: no row before %s to drop", table, firstKept[table])
		}
	}
	syncAt(t, a, short)
	for _, table := range partitionedTables {
		if got := fingerprint(t, conn, table, since, firstKept[table]); got != kept[table] {
			t.Errorf("%s from %s on: %s, before the drop %s", table, firstKept[table], got, kept[table])
		}
		if n := rowsBefore(t, conn, table, firstKept[table]); n != 0 {
			t.Errorf("%s: %d rows before %s left; want those days dropped", table, n, firstKept[table])
		}
	}
	verify(t, newSyncer(t, a.st, short)) // local retention is shorter still
}

// Collectors making and dropping the same partitions at once, as hosts
// starting together do, neither fail nor make a day twice.
func TestPartitionsMadeAtOnce(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	// Any table partitioned by timestamp: the partition code knows
	// tables by name only.
	if _, err := asCollector(t, url).Exec(t.Context(), "CREATE TABLE other_metrics (timestamp timestamptz NOT NULL) PARTITION BY RANGE (timestamp)"); err != nil {
		t.Fatal(err)
	}
	const collectors = 12
	first := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var days []time.Time
	for i := range 30 {
		days = append(days, first.AddDate(0, 0, i))
	}
	conns := make([]*pgx.Conn, collectors)
	for i := range conns {
		conns[i] = asCollector(t, url)
	}
	errs := make(chan error, 2*collectors)
	dropped := make(chan []string, collectors)
	// All make, then all drop: a collector making days another one
	// just dropped would make them again, as it should.
	atOnce(collectors, func(i int) {
		mine := slices.Clone(days)
		if i%2 == 1 {
			slices.Reverse(mine)
		}
		errs <- ensurePartitions(t.Context(), conns[i], "other_metrics", mine)
	})
	atOnce(collectors, func(i int) {
		names, err := dropPartitionsBefore(t.Context(), conns[i], "other_metrics", first.AddDate(0, 0, 10))
		dropped <- names
		errs <- err
	})
	close(errs)
	close(dropped)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var all []string
	for names := range dropped {
		all = append(all, names...)
	}
	slices.Sort(all)
	if len(all) != 10 || len(slices.Compact(all)) != 10 {
		t.Errorf("dropped %v, want the 10 days before %s once each", all, first.AddDate(0, 0, 10).Format(time.DateOnly))
	}

	tx, err := asCollector(t, url).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	parts, err := listPartitions(t.Context(), tx, "other_metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, day := range days[10:] {
		n := 0
		for _, p := range parts {
			if p.covers(day) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d partitions hold %s, want 1", n, day.Format(time.DateOnly))
		}
	}
	for i := 1; i < len(parts); i++ {
		if parts[i-1].to == nil || parts[i].from == nil || parts[i].from.Before(*parts[i-1].to) {
			t.Errorf("partitions %s and %s overlap", parts[i-1].name, parts[i].name)
		}
	}
}

// asCollector connects to url as the collector does, closed when tb ends.
func asCollector(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// atOnce runs fn(0) to fn(n-1) at once and waits for them.
func atOnce(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// earlierSchema makes the central schema as the release before
// partitions left it: version 2, the traffic tables unpartitioned.
func earlierSchema(tb testing.TB, conn *pgx.Conn) {
	tb.Helper()
	stmts := []string{createSchemaTableSQL}
	for v := range 2 {
		stmts = append(stmts, migrations[v]()...)
	}
	stmts = append(stmts, "UPDATE collector_schema SET version = 2")
	for _, stmt := range stmts {
		if _, err := conn.Exec(tb.Context(), stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
}

// A central database of the release before partitions keeps every row
// through the upgrade: its tables become the first partitions, the new
// rows go to partitions of their own, and retention drops the old ones
// once their last day is past.
func TestUnpartitionedTablesMigrated(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	conn := server.Conn("fleet")
	earlierSchema(t, asCollector(t, url))
	// Three days of another host's rows, sent by the earlier release.
	old := time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC)
	for _, table := range partitionedTables {
		step := map[store.Table]string{store.Minutes: "1 minute", store.Hours: "1 hour"}[table]
		server.Exec("fleet", fmt.Sprintf(`INSERT INTO %s (host, timestamp, ip, consensus_up, quic_down)
SELECT 'old-host', ts, '192.0.2.' || c, c * 1000 + extract(epoch from ts)::bigint %% 977, c
FROM generate_series($1::timestamptz, $1::timestamptz + interval '3 days' - interval '1 second', interval '%s') ts,
	generate_series(1, 5) c`, table, step), old)
	}
	before := map[store.Table]string{}
	for _, table := range partitionedTables {
		before[table] = fingerprint(t, conn, table, since, longAgo)
	}

	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	syncAt(t, h, cfg)
	verify(t, newSyncer(t, h.st, cfg))
	for _, table := range partitionedTables {
		var kind string
		if err := conn.QueryRow(t.Context(), "SELECT relkind::text FROM pg_class WHERE relname = $1", table.String()).Scan(&kind); err != nil || kind != "p" {
			t.Errorf("%s is of kind %q, %v; want partitioned (p)", table, kind, err)
		}
		if got := fingerprint(t, conn, table, ofHost, "old-host"); got != before[table] {
			t.Errorf("%s: the earlier rows are %s, were %s", table, got, before[table])
		}
	}
	// The upgrade summed the earlier hourly rows too.
	var hourly, monthly int64
	sum := "SELECT coalesce(sum(" + strings.Join(store.CounterNames(), " + ") + "), 0) FROM %s WHERE host = 'old-host'"
	if err := conn.QueryRow(t.Context(), fmt.Sprintf(sum, "traffic_hourly")).Scan(&hourly); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), fmt.Sprintf(sum, "traffic_hourly_by_month")).Scan(&monthly); err != nil {
		t.Fatal(err)
	}
	if hourly == 0 || monthly != hourly {
		t.Errorf("the earlier hourly rows sum to %d, their months to %d", hourly, monthly)
	}

	// A month on, with a week kept, the earlier rows' partition is past.
	cfg.Retention = store.Retention{Minutes: 7 * 24 * time.Hour, Hourly: 7 * 24 * time.Hour}
	h.now = h.now.AddDate(0, 1, 0)
	syncAt(t, h, cfg)
	for _, table := range partitionedTables {
		if got := fingerprint(t, conn, table, ofHost, "old-host"); got != "0 rows, 0 bytes and packets" {
			t.Errorf("%s: the earlier rows past retention are %s", table, got)
		}
	}
}

// A host set to send only some tables sends those, whole, and nothing
// of the others.
func TestOnlyTablesSetSent(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	cfg.Tables = []store.Table{store.Days, store.Hours}
	sent := syncAt(t, h, cfg)
	verify(t, sent)
	if n := count(t, server, "fleet", store.Minutes); n != 0 {
		t.Errorf("%d minute rows sent, want none", n)
	}
	for _, table := range cfg.Tables {
		local, err := h.st.Pending(t.Context(), table, store.Mark{})
		if err != nil {
			t.Fatal(err)
		}
		if central := count(t, server, "fleet", table); central != local || local == 0 {
			t.Errorf("%s: %d central rows, %d local", table, central, local)
		}
	}
}

// With SYNC_POSTGRES_PARTITIONS=use the collector makes no partition: a
// row without one fails its batch with a line saying what to do, and
// goes once the operator has made it.
func TestOperatorManagesPartitions(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := steppedHistory(t, 3)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	cfg.Partitions = UsePartitions
	_, err := Once(t.Context(), h.path, cfg)
	if err == nil || !strings.Contains(err.Error(), "SYNC_POSTGRES_PARTITIONS=use: create the day's partition") {
		t.Fatalf("sync without partitions = %v", err)
	}
	conn := server.Conn("fleet")
	var parts int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_inherits").Scan(&parts); err != nil || parts != 0 {
		t.Errorf("%d partitions made, %v; want none", parts, err)
	}
	for _, table := range partitionedTables {
		server.Exec("fleet", fmt.Sprintf("CREATE TABLE %[1]s_march PARTITION OF %[1]s FOR VALUES FROM ('2025-03-01') TO ('2025-04-01')", table))
	}
	if _, err := Once(t.Context(), h.path, cfg); err != nil {
		t.Fatalf("after the operator made the partitions: %v", err)
	}
	verify(t, newSyncer(t, h.st, cfg))
}
