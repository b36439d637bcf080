package web

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/promnames"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/traffic"
)

// httpListen is where the daemon's HTTP server listens in the lab's host
// namespace.
const httpListen = "127.0.0.1:9986"

// TestHTTPServer runs the daemon with its HTTP server in the lab and reads
// it as Prometheus and the dashboard would: under traffic, /metrics has
// every metric name the contrib dashboard and alerting rules use; once a
// flush has passed with no traffic, its host totals equal what the
// database holds, which equals the frames captured; the report API
// answers exactly what collector report writes for the same span.
func TestHTTPServer(t *testing.T) {
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	start := time.Now().Add(-time.Minute)
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0", "-reverse-dns", "0",
		"-http-listen", httpListen)
	client := &http.Client{Transport: l.HTTPTransport(l.HostNS), Timeout: 10 * time.Second}
	stopTraffic := labtest.SteadyTraffic(t, l, 200*time.Millisecond)
	// Flushes with traffic: the per-client series are there.
	time.Sleep(2500 * time.Millisecond)
	exported, err := promnames.Exported(bytes.NewReader(get(t, client, "/metrics")))
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for file, exprsOf := range map[string]func([]byte) ([]string, error){
		"../../contrib/grafana-dashboard.json": promnames.DashboardExprs,
		"../../contrib/prometheus-rules.yml":   promnames.RuleExprs,
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		exprs, err := exprsOf(b)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		used = append(used, promnames.Extract(exprs...)...)
	}
	if missing := promnames.Missing(used, exported); len(missing) > 0 {
		t.Errorf("contrib uses metrics the daemon does not export: %v", missing)
	}

	counted := stopTraffic()
	// Two flush intervals with no traffic: the last one drained nothing,
	// so everything counted is stored.
	time.Sleep(2500 * time.Millisecond)
	until := time.Now().Truncate(time.Second)
	rows := labtest.Stored(t, db)
	labtest.AssertSame(t, rows, counted)
	var stored traffic.Traffic
	for _, tr := range rows {
		stored.Add(&tr)
	}
	if got := hostTotals(t, get(t, client, "/metrics")); got != stored {
		t.Errorf("collector_traffic_*_total %v, the database holds %v", got, stored)
	}

	span := url.Values{"since": {start.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}, "by": {"client"}}
	api := get(t, client, "/api/v1/report?"+span.Encode())
	cli, err := exec.Command(selfexec.Collector(), "report", "-config", os.DevNull, "-sqlite-path", db, "-format", "json",
		"-since", span.Get("since"), "-until", span.Get("until"), "-by", "client").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(api, cli) {
		t.Errorf("/api/v1/report:\n%s\ncollector report -format json:\n%s", api, cli)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}

// get fetches path from the daemon's HTTP server.
func get(t *testing.T, client *http.Client, path string) []byte {
	t.Helper()
	code, body := ask(t, client, "http://"+httpListen+path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d: %s", path, code, body)
	}
	return []byte(body)
}

// hostTotals reads collector_traffic_bytes_total and _packets_total from
// a scrape.
func hostTotals(t *testing.T, scrape []byte) traffic.Traffic {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	var out traffic.Traffic
	for name, field := range map[string]func(*traffic.Tally) *uint64{
		"collector_traffic_bytes_total":   func(t *traffic.Tally) *uint64 { return &t.Bytes },
		"collector_traffic_packets_total": func(t *traffic.Tally) *uint64 { return &t.Packets },
	} {
		family := families[name]
		if family == nil {
			t.Fatalf("no %s in the scrape", name)
		}
		for _, m := range family.GetMetric() {
			labels := map[string]string{}
			for _, p := range m.GetLabel() {
				labels[p.GetName()] = p.GetValue()
			}
			class, err := traffic.ParseClass(labels["class"])
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			dir := traffic.Up
			if labels["direction"] == traffic.Down.String() {
				dir = traffic.Down
			}
			*field(&out[class][dir]) = uint64(m.GetCounter().GetValue())
		}
	}
	return out
}
