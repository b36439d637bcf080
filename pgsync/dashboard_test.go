package pgsync

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
)

// dashboardFile is the Grafana dashboard shipped for the central tables.
var dashboardFile = filepath.Join("..", "contrib", "grafana-fleet-dashboard.json")

// dashboardQueries returns the SQL of the dashboard's panels and
// variables.
func dashboardQueries(t *testing.T) map[string]string {
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

// grafanaMacros expands Grafana's PostgreSQL macros as Grafana does, for
// a span and an interval of an hour.
var grafanaMacros = strings.NewReplacer(
	"$__interval", "1h",
	"$host", "'host-a'",
	"$top", "20",
)

var (
	timeGroupAlias = regexp.MustCompile(`\$__timeGroupAlias\(([\w.]+), 1h\)`)
	timeFilter     = regexp.MustCompile(`\$__timeFilter\(([\w.]+)\)`)
)

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
			q := grafanaMacros.Replace(strings.ReplaceAll(sql, "$table", table.String()))
			q = timeGroupAlias.ReplaceAllString(q, `to_timestamp(floor(extract(epoch from $1)/3600)*3600) AS "time"`)
			q = timeFilter.ReplaceAllString(q, `$1 BETWEEN '2025-02-01T00:00:00Z' AND '2025-04-01T00:00:00Z'`)
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
