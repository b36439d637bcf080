package promnames

import (
	"slices"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"bare name", "up", []string{"up"}},
		{"matchers and range", `rate(collector_traffic_bytes_total{class="consensus", direction=~"up|down"}[5m])`, []string{"collector_traffic_bytes_total"}},
		{"grouping", `sum by (class, direction) (rate(a_total[$__rate_interval])) / on (instance) group_left (job) b`, []string{"a_total", "b"}},
		{"grouping after", `sum(a) without (client)`, []string{"a"}},
		{"group_left without labels", `a * on (instance) group_left b`, []string{"a", "b"}},
		{"keywords", `a > bool 1 and b or c unless d offset 5m`, []string{"a", "b", "c", "d"}},
		{"keywords in capitals", `a AND b`, []string{"a", "b"}},
		{"numbers", `a > 1e3 * 0.5 + 0x1f - .5`, []string{"a"}},
		{"strings", `label_replace(a, "dst", "$1 b", "src", "(.*)")`, []string{"a"}},
		{"escaped quote", `a{x="say \"b\""} + c`, []string{"a", "c"}},
		{"grafana variables", `topk($top, a{instance=~"$instance"}) / ${interval} * $__range_s`, []string{"a"}},
		{"absent and time", `absent(up{job="collector"}) or time() - collector_last_successful_flush_timestamp_seconds > 300`, []string{"collector_last_successful_flush_timestamp_seconds", "up"}},
		{"recording rule names", `job:a:rate5m > 0`, []string{"job:a:rate5m"}},
		{"subquery", `max_over_time(rate(a[5m])[1h:1m])`, []string{"a"}},
		{"comment", "a # b\n+ c", []string{"a", "c"}},
		{"label_values", `label_values(collector_build_info{job="x"}, instance)`, []string{"collector_build_info"}},
		{"label_values of a label alone", `label_values(instance)`, nil},
		{"at modifier", `a @ start()`, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Extract(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("Extract(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
	if got := Extract("b + a", "a", "c"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Extract of several = %q, want sorted, each once", got)
	}
}

func TestDashboardExprs(t *testing.T) {
	dashboard := `{
		"panels": [
			{"type": "row", "panels": [{"targets": [{"expr": "a"}]}]},
			{"targets": [{"expr": "b"}, {"refId": "no expr"}]}
		],
		"templating": {"list": [
			{"type": "query", "query": "label_values(c, instance)"},
			{"type": "query", "query": {"query": "label_values(d, client)", "refId": "x"}},
			{"type": "datasource", "query": "prometheus"}
		]}
	}`
	exprs, err := DashboardExprs([]byte(dashboard))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Extract(exprs...), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("names = %q, want %q", got, want)
	}
	if _, err := DashboardExprs([]byte("{")); err == nil {
		t.Error("a broken dashboard was read")
	}
}

func TestRuleExprs(t *testing.T) {
	rules := `
groups:
  - name: one
    rules:
      - alert: A
        expr: a > 0
        for: 5m
      - record: job:b:rate5m
        expr: |
          rate(b[5m])
  - name: two
    rules:
      - alert: C
        expr: absent(c)
`
	exprs, err := RuleExprs([]byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Extract(exprs...), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("names = %q, want %q", got, want)
	}
}

func TestExportedAndMissing(t *testing.T) {
	scrape := `# HELP a_total A.
# TYPE a_total counter
a_total{class="quic"} 1
a_total{class="siamux"} 2
# TYPE h histogram
h_bucket{le="+Inf"} 1
h_sum 1
h_count 1
b 3
`
	exported, err := Exported(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a_total", "h_bucket", "h_sum", "h_count", "b"} {
		if !exported[name] {
			t.Errorf("%s not exported", name)
		}
	}
	if len(exported) != 5 {
		t.Errorf("exported = %v, want 5 names", exported)
	}
	got := Missing([]string{"a_total", "up", "ALERTS", "h", "zzz"}, exported)
	if want := []string{"h", "zzz"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
}
