package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/back2basic/collector/internal/testkit/promnames"
)

// The Grafana dashboard and the Prometheus rules shipped for these
// metrics, and the rules' unit tests.
var (
	dashboardFile = filepath.Join("..", "contrib", "grafana-dashboard.json")
	rulesFile     = filepath.Join("..", "contrib", "prometheus-rules.yml")
	rulesTestFile = filepath.Join("..", "contrib", "prometheus-rules.test.yml")
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The rules load in Prometheus, and each alert fires when its unit tests
// say, on the series they give.
func TestContribRules(t *testing.T) {
	promtool(t, "", "check", "rules", rulesFile)
	promtool(t, "", "test", "rules", rulesTestFile)
}

// Every metric the dashboard and the rules ask for is in a real scrape:
// none of their panels or alerts stays empty for want of a series.
func TestContribNames(t *testing.T) {
	dashboard, err := promnames.DashboardExprs(readFile(t, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := promnames.RuleExprs(readFile(t, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	for file, exprs := range map[string][]string{dashboardFile: dashboard, rulesFile: rules} {
		if len(promnames.Extract(exprs...)) == 0 {
			t.Errorf("%s: no metric names found", file)
		}
	}
	exported, err := promnames.Exported(strings.NewReader(scrape(t, fed(t))))
	if err != nil {
		t.Fatal(err)
	}
	if missing := promnames.Missing(promnames.Extract(append(dashboard, rules...)...), exported); len(missing) > 0 {
		t.Errorf("used by the dashboard or the rules but not in /metrics: %q", missing)
	}
}

// grafanaVariables are values for the variables the dashboard's queries
// use, longest name first, so that each is replaced whole.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$instance", "localhost:9986",
)

// The dashboard's queries are PromQL Prometheus accepts: promtool checks
// them as recording rules, Grafana's variables given values.
func TestContribDashboardQueries(t *testing.T) {
	exprs, err := promnames.DashboardExprs(readFile(t, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		// Templating queries are Grafana's, not PromQL.
		if strings.HasPrefix(e, "label_values(") {
			continue
		}
		e = grafanaVariables.Replace(e)
		if strings.Contains(e, "$") {
			t.Errorf("query %q: a variable the test gives no value", e)
		}
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard_query_%d", i), Expr: e})
	}
	file := map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}}
	out, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "", "check", "rules", path)
}

// Every panel and query of the dashboard reads the data source chosen on
// import, ${DS_PROMETHEUS}, and no data source of the machine it was
// made on.
func TestContribDashboardDataSource(t *testing.T) {
	var model any
	if err := json.Unmarshal(readFile(t, dashboardFile), &model); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if k == "datasource" {
					ds, _ := child.(map[string]any)
					if ds["uid"] != "${DS_PROMETHEUS}" {
						t.Errorf("%s.datasource = %v, want uid ${DS_PROMETHEUS}", path, child)
					}
					continue
				}
				walk(path+"."+k, child)
			}
		case []any:
			for i, child := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	walk("dashboard", model)
}
