package pgsync

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
)

// dashboardFile is the Grafana dashboard shipped for the central tables.
var dashboardFile = filepath.Join("..", "contrib", "grafana-fleet-dashboard.json")

// dashboardQueries returns the SQL of the dashboard's panels and
// variables.
func dashboardQueries(t testing.TB) map[string]string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ RawSQL string }
		}
		Templating struct {
			List []struct {
				Name, Type, Query string
			}
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	queries := make(map[string]string)
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			queries["panel "+p.Title] = target.RawSQL
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			queries["variable "+v.Name] = v.Query
		}
	}
	return queries
}

var (
	timeGroupAlias = regexp.MustCompile(`\$__timeGroupAlias\(([\w.]+), \$__interval\)`)
	timeFilter     = regexp.MustCompile(`\$__timeFilter\(([\w.]+)\)`)
)

// grafanaSQL expands Grafana's PostgreSQL macros in a query of the
// dashboard as Grafana does, with an interval of an hour, table for
// $table, hosts (quoted, comma-separated) for $host and 20 for $top.
func grafanaSQL(sql, table, hosts string, from, to time.Time) string {
	q := strings.NewReplacer("$table", table, "$host", hosts, "$top", "20").Replace(sql)
	q = timeGroupAlias.ReplaceAllString(q, `to_timestamp(floor(extract(epoch from $1)/3600)*3600) AS "time"`)
	return timeFilter.ReplaceAllString(q, fmt.Sprintf(`$1 BETWEEN '%s' AND '%s'`, from.Format(time.RFC3339), to.Format(time.RFC3339)))
}

// The dashboard's queries run on the central tables and find rows at every
// resolution it offers.
func TestDashboardQueries(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	if _, err := newSyncer(t, h.st, testConfig(url, "host-a", &log)).SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn := server.Conn("fleet")
	queries := dashboardQueries(t)
	if len(queries) < 5 {
		t.Fatalf("%d queries in %s, want the panels' and the host variable's", len(queries), dashboardFile)
	}
	for name, sql := range queries {
		for _, table := range tables {
			q := grafanaSQL(sql, table.String(), "'host-a'", day0.AddDate(0, -1, 0), day0.AddDate(0, 1, 0))
			if strings.Contains(q, "$") {
				t.Errorf("%s: a macro this test does not know in:\n%s", name, q)
				continue
			}
			rows, err := conn.Query(t.Context(), q)
			if err != nil {
				t.Errorf("%s on %s: %v\n%s", name, table, err, q)
				continue
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil || n == 0 {
				t.Errorf("%s on %s: %d rows, %v\n%s", name, table, n, err, q)
			}
			if !strings.Contains(sql, "$table") {
				break
			}
		}
	}
}

// The README's top renters this month, reading whole days from
// traffic_daily and today from traffic_hourly, equal the sums of the
// month's hourly rows, on two synced hosts.
func TestREADMETopRenters(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	var log syncbuf.Buffer
	var now time.Time
	for _, host := range []string{"host-a", "host-b"} {
		h := steppedHistory(t, 2*24+5)
		if _, err := newSyncer(t, h.st, testConfig(url, host, &log)).SyncOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		now = h.now
	}
	conn := server.Conn("fleet")
	read := func(query string, args ...any) []string {
		t.Helper()
		rows, err := conn.Query(t.Context(), query, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, query)
		}
		var out []string
		for rows.Next() {
			values, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(values...))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := read(at(readmeTopRenters(t), now))
	want := read(`SELECT ip, count(DISTINCT host), pg_size_pretty(sum(siamux_up + siamux_down + quic_up + quic_down)),
	pg_size_pretty(sum(siamux_up + quic_up)), pg_size_pretty(sum(siamux_down + quic_down))
FROM traffic_hourly WHERE timestamp >= $1 AND ip <> 'other'
GROUP BY ip ORDER BY sum(siamux_up + siamux_down + quic_up + quic_down) DESC LIMIT 20`, day0)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("the README's top renters at %s:\n%s\nthe month's hourly rows:\n%s", now, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
