package pgsync

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/goal"
	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// The fleet of issue 22: a thousand hosts of 200 clients each.
const (
	fleetHosts   = 1000
	fleetClients = 200
	// fleetFiles are the local databases the hosts sync from, each
	// under the HOST_IDs of fleetHosts/fleetFiles hosts: writing a
	// thousand files would take longer than syncing them.
	fleetFiles = 10
	// renters are the clients the hosts' clients are drawn from, so that
	// each renter uses many hosts, as on the Sia network.
	renters = 2000
	// fleetSyncs is how many hosts sync at the same time.
	fleetSyncs = 8
)

// readmeFile holds the fleet queries operators are told to run.
var readmeFile = filepath.Join("..", "README.md")

// readmeTopRenters returns the README's query of the top renters across
// hosts this month.
func readmeTopRenters(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(readmeFile)
	if err != nil {
		tb.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sql\n(-- Top renters across hosts this month.*?)```").FindSubmatch(b)
	if m == nil {
		tb.Fatalf("%s has no sql block starting -- Top renters across hosts this month", readmeFile)
	}
	return string(m[1])
}

// topRentersFromDaily is the top renters of a month as the README had
// them before traffic_hourly_by_month: the month's whole days from
// traffic_daily, the last from traffic_hourly, summed per host and
// renter, then per renter.
const topRentersFromDaily = `SELECT ip AS renter, count(*) AS hosts, pg_size_pretty(sum(rhp4)) AS rhp4,
	pg_size_pretty(sum(up)) AS up, pg_size_pretty(sum(down)) AS down
FROM (
	SELECT ip, host, sum(siamux_up + siamux_down + quic_up + quic_down) AS rhp4,
		sum(siamux_up + quic_up) AS up, sum(siamux_down + quic_down) AS down
	FROM (
		SELECT host, ip, siamux_up, siamux_down, quic_up, quic_down FROM traffic_daily
		WHERE timestamp >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
			AND timestamp < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
		UNION ALL
		SELECT host, ip, siamux_up, siamux_down, quic_up, quic_down FROM traffic_hourly
		WHERE timestamp >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	) AS month
	WHERE ip <> 'other'
	GROUP BY ip, host
) AS per_host
GROUP BY ip
ORDER BY sum(rhp4) DESC
LIMIT 20`

// at replaces now() in a query by t, so that it reads as it would then.
func at(query string, t time.Time) string {
	return strings.ReplaceAll(query, "now()", fmt.Sprintf("'%s'::timestamptz", t.Format(time.RFC3339)))
}

// fleetFile writes a local database of a host whose clients are
// fleetClients renters from the first on, with a day of traffic from
// day, as the daemon stores it: rolled up into hours and the day.
func fleetFile(tb testing.TB, dir string, first int, day time.Time) *store.Store {
	tb.Helper()
	path := filepath.Join(dir, fmt.Sprintf("host-%d.db", first))
	now := day
	st, err := store.Open(path, store.Options{Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	for hour := range 24 {
		start := day.Add(time.Duration(hour) * time.Hour)
		rows := make([]traffic.Row, 0, fleetClients)
		for i := range fleetClients {
			r := (first + i) % renters
			addr := netip.AddrFrom4([4]byte{10, byte(r >> 8), byte(r), 1})
			rows = append(rows, traffic.Row{Start: start, Client: traffic.ClientOf(addr), Traffic: dbtest.Seeded(uint64(r*24 + hour))})
		}
		now = start.Add(time.Hour)
		if err := st.Consume(tb.Context(), traffic.Period{Start: start, End: now, Rows: rows}); err != nil {
			tb.Fatal(err)
		}
	}
	now = day.Add(25 * time.Hour) // the day rolled up
	if err := st.Consume(tb.Context(), traffic.Period{Start: now.Add(-time.Minute), End: now}); err != nil {
		tb.Fatal(err)
	}
	return st
}

// A thousand hosts of 200 clients sync a day of hourly rows (4.8 million)
// into one PostgreSQL through the real sync, each its own Syncer and
// connection, fleetSyncs at a time; then the README's top renters of a
// month, as on its last day (30 days of daily rows, made in SQL from the
// synced day, and that day's hourly rows), and the fleet dashboard's
// queries over the day, of every host.
func BenchmarkFleet(b *testing.B) {
	server := pgtest.New(b)
	url := server.CreateDatabase("fleet")
	// The last day of this month: the month's whole days before it are
	// in traffic_daily, its hours in traffic_hourly.
	now := time.Now().UTC()
	day := time.Date(now.Year(), now.Month()+1, 0, 0, 0, 0, 0, time.UTC)
	files := make([]*store.Store, fleetFiles)
	for i := range files {
		files[i] = fleetFile(b, b.TempDir(), i*renters/fleetFiles, day)
	}

	began := time.Now()
	hosts := make(chan int)
	errs := make(chan error, fleetHosts)
	var wg sync.WaitGroup
	for range fleetSyncs {
		wg.Go(func() {
			for i := range hosts {
				errs <- syncFleetHost(b.Context(), url, files[i%fleetFiles], i, day.Add(23*time.Hour))
			}
		})
	}
	for i := range fleetHosts {
		hosts <- i
	}
	close(hosts)
	wg.Wait()
	took := time.Since(began)
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	conn := server.Conn("fleet")
	var rows int
	var size int64
	if err := conn.QueryRow(b.Context(), `SELECT (SELECT count(*) FROM traffic_hourly),
	(SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'traffic_hourly'::regclass)`).Scan(&rows, &size); err != nil {
		b.Fatal(err)
	}
	if rows != fleetHosts*fleetClients*24 {
		b.Fatalf("%d hourly rows synced, want %d", rows, fleetHosts*fleetClients*24)
	}
	b.ReportMetric(took.Seconds(), "sync-s")
	b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
	goal.Report(b, "fleet sync: a day of hourly rows of 1,000 hosts x 200 clients, ingest", goal.None, took.Seconds()*1e6/float64(rows), "s per million rows", goal.None)
	goal.Report(b, "fleet sync: central size of a day of hourly rows of 1,000 hosts", goal.None, float64(size)/(1<<20), "MiB", goal.None)

	// The month's whole days before the synced one, as each host's
	// daily rollup of that day would be.
	counters := strings.Join(store.CounterNames(), ", ")
	server.Exec("fleet", fmt.Sprintf(`INSERT INTO traffic_daily (host, timestamp, ip, %[1]s)
SELECT host, d, ip, %[1]s
FROM (SELECT host, ip, %[2]s FROM traffic_hourly WHERE timestamp >= $3 GROUP BY host, ip) AS synced_day (host, ip, %[1]s),
	generate_series($1::timestamptz, $2::timestamptz, interval '1 day') d`, counters, sums()),
		time.Date(day.Year(), day.Month(), 1, 0, 0, 0, 0, time.UTC), day.Add(-24*time.Hour), day)
	server.Exec("fleet", "VACUUM ANALYZE traffic_daily")
	server.Exec("fleet", "VACUUM ANALYZE traffic_hourly")
	var daily int
	if err := conn.QueryRow(b.Context(), "SELECT count(*) FROM traffic_daily").Scan(&daily); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d hourly rows synced in %v; %d daily rows made for the month's other days", rows, took.Round(time.Millisecond), daily)

	var hostList []string
	for i := range fleetHosts {
		hostList = append(hostList, fmt.Sprintf("'%s'", fleetHostID(i)))
	}
	monthEnd := day.Add(23*time.Hour + 30*time.Minute)
	topRenters := "README: top renters across hosts this month, on its last day"
	queries := []struct{ name, sql string }{
		{"from daily and hourly rows", at(topRentersFromDaily, monthEnd)},
		{topRenters, at(readmeTopRenters(b), monthEnd)},
	}
	for name, sql := range dashboardQueries(b) {
		queries = append(queries, struct{ name, sql string }{"dashboard " + name + " over a day of 1,000 hosts",
			grafanaSQL(sql, "traffic_hourly", strings.Join(hostList, ","), day, day.Add(24*time.Hour))})
	}
	fromDaily := goal.None // unless -bench runs its query
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				rows, err := conn.Query(b.Context(), q.sql)
				if err != nil {
					b.Fatalf("%v\n%s", err, q.sql)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil || n == 0 {
					b.Fatalf("%d rows, %v\n%s", n, err, q.sql)
				}
			}
			took := b.Elapsed().Seconds() / float64(b.N)
			switch {
			case q.name == topRenters:
				goal.Report(b, q.name, fromDaily, took, "s", 1)
			case q.name == queries[0].name:
				fromDaily = took // the before of topRenters
			default: // the issue names no goal for the dashboard
				goal.Report(b, q.name, goal.None, took, "s", goal.None)
			}
		})
	}
}

// fleetHostID names the ith host of the fleet.
func fleetHostID(i int) string { return fmt.Sprintf("host-%04d", i) }

// syncFleetHost syncs the hourly rows of st as the ith host of the
// fleet would, at clock now.
func syncFleetHost(ctx context.Context, url string, st *store.Store, i int, now time.Time) error {
	s, err := New(st, Config{URL: url, HostID: fleetHostID(i), Tables: []store.Table{store.Hours}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer s.Close()
	s.now = func() time.Time { return now }
	sent, err := s.SyncOnce(ctx)
	if err == nil && sent[store.Hours] != fleetClients*24 {
		err = fmt.Errorf("host %d sent %v, want %d hourly rows", i, sent, fleetClients*24)
	}
	return err
}
