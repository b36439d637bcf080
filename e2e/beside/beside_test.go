package beside

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/internal/testkit/hostdtest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
)

const (
	// httpListen is where the daemon serves in the lab's host namespace.
	httpListen = "127.0.0.1:9986"
	password   = "lab-hostd-password"
	// poll is HOSTD_POLL_INTERVAL: each read of hostd times out after it.
	poll = 2 * time.Second
)

// served is hostd's running totals the server answers with, period by
// period from a day before the test: RHP egress grows by k*1000 bytes in
// period k, ingress by a third of it, the syncer by a fifth and a tenth,
// and earned plus potential egress revenue by (k%7)*10^17 hastings at
// 10^14 H/B (100 SC/TB): (k%7)*1000 bytes paid.
type served struct {
	first  time.Time
	totals []hostdtest.Totals
}

func newServed(now time.Time) *served {
	s := &served{first: now.Add(-24 * time.Hour).Truncate(hostd.Period)}
	price := new(big.Int).Exp(big.NewInt(10), big.NewInt(14), nil)
	revenue := new(big.Int)
	var rhp uint64
	// Up to an hour ahead: the daemon reads only periods that ended.
	for k := 0; s.first.Add(time.Duration(k) * hostd.Period).Before(now.Add(time.Hour)); k++ {
		rhp += uint64(k) * 1000
		revenue = new(big.Int).Add(revenue, new(big.Int).Mul(big.NewInt(int64(k%7)), big.NewInt(1e17)))
		s.totals = append(s.totals, hostdtest.Totals{
			Start:           s.first.Add(time.Duration(k) * hostd.Period),
			RHP:             hostdtest.Data{Ingress: rhp / 3, Egress: rhp},
			Syncer:          hostdtest.Data{Ingress: rhp / 5, Egress: rhp / 10},
			EarnedEgress:    new(big.Int).Div(revenue, big.NewInt(2)),
			PotentialEgress: new(big.Int).Sub(revenue, new(big.Int).Div(revenue, big.NewInt(2))),
			EgressPrice:     price,
		})
	}
	return s
}

// serveOn starts a hostd on ln answering s.
func (s *served) serveOn(t *testing.T, ln net.Listener) *hostdtest.Server {
	srv := hostdtest.StartOn(t, ln, password, hostdtest.V2_10_2)
	for _, tot := range s.totals {
		srv.AddPeriod(tot)
	}
	return srv
}

// usage returns what hostd counted in the period at start, as the
// daemon should store it.
func (s *served) usage(start time.Time) (rhpIn, rhpOut, syncIn, syncOut, paid int64) {
	k := int(start.Sub(s.first) / hostd.Period)
	cur, prev := s.totals[k], s.totals[k-1]
	rev := func(t hostdtest.Totals) *big.Int { return new(big.Int).Add(t.EarnedEgress, t.PotentialEgress) }
	p := new(big.Int).Quo(new(big.Int).Sub(rev(cur), rev(prev)), cur.EgressPrice)
	return int64(cur.RHP.Ingress - prev.RHP.Ingress), int64(cur.RHP.Egress - prev.RHP.Egress),
		int64(cur.Syncer.Ingress - prev.Syncer.Ingress), int64(cur.Syncer.Egress - prev.Syncer.Egress), p.Int64()
}

// TestBesideHostd runs the real daemon against a hostd while real traffic
// flows: hostd refusing the password, stalling past the read's timeout,
// and unreachable each cost one journal line as it starts and one as it
// ends, and counting and flushing go on exactly; the periods stored are
// what hostd served, and the ratios and unpaid share computed by hand
// from the database are what the report, the API and /metrics show.
func TestBesideHostd(t *testing.T) {
	l := labtest.New(t)
	start := time.Now()
	// The span compared starts with hostd's period holding the start,
	// which hostd counts where it starts.
	since := start.Truncate(hostd.Period)
	data := newServed(start)
	ln := listenIn(t, l, "127.0.0.1:0")
	addr := ln.Addr().String()
	srv := data.serveOn(t, ln)

	db := filepath.Join(t.TempDir(), "collector.db")
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "0", "-reverse-dns", "0",
		"-http-listen", httpListen, "-hostd-api-url", srv.APIURL(), "-hostd-api-password", password, "-hostd-poll-interval", poll.String())
	client := &http.Client{Transport: l.HTTPTransport(l.HostNS), Timeout: 10 * time.Second}
	stopTraffic := labtest.SteadyTraffic(t, l, 200*time.Millisecond)

	// The traffic runs into the period that ends at boundary, which the
	// daemon reads a minute after it ends.
	boundary := start.Truncate(hostd.Period).Add(hostd.Period)
	if time.Until(boundary) < 15*time.Second {
		boundary = boundary.Add(hostd.Period)
	}
	outages := []struct {
		name        string
		break_, fix func()
	}{
		{"401", func() { srv.Fail(http.StatusUnauthorized) }, func() { srv.Fail(0) }},
		{"stall past the timeout", func() { srv.Stall(2 * poll) }, func() { srv.Stall(0) }},
		{"unreachable", func() { srv.Close() }, func() { srv = data.serveOn(t, listenIn(t, l, addr)) }},
	}
	for i, o := range outages {
		o.break_()
		waitLog(t, d, "cannot read hostd's metrics", i+1, 4*poll)
		time.Sleep(2 * poll) // reads failing go on
		o.fix()
		waitLog(t, d, "reading hostd's metrics again", i+1, 4*poll)
	}
	time.Sleep(time.Until(boundary))
	counted := stopTraffic()
	time.Sleep(2500 * time.Millisecond) // two flushes with no traffic: all stored
	labtest.AssertSame(t, labtest.Stored(t, db), counted)

	last := boundary.Add(-hostd.Period)
	conn := labtest.OpenDB(t, db)
	for deadline := boundary.Add(time.Minute + 3*poll + 10*time.Second); ; time.Sleep(time.Second) {
		var at int64
		if err := conn.QueryRow("SELECT coalesce(MAX(timestamp), 0) FROM hostd_5m").Scan(&at); err != nil {
			t.Fatal(err)
		}
		if at == last.Unix() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hostd's period %v not stored by %v (the last is %v)", last, deadline, time.Unix(at, 0))
		}
	}
	for _, msg := range []string{"cannot read hostd's metrics", "reading hostd's metrics again"} {
		if n := strings.Count(d.Output(), msg); n != len(outages) {
			t.Errorf("%q logged %d times for %d outages", msg, n, len(outages))
		}
	}
	if strings.Contains(d.Output(), password) {
		t.Error("the journal holds hostd's password")
	}

	// Every period stored is what hostd served, from a day back.
	rows, err := conn.Query("SELECT timestamp, rhp_ingress, rhp_egress, syncer_ingress, syncer_egress, paid_egress, egress_price, version, quic FROM hostd_5m ORDER BY timestamp")
	if err != nil {
		t.Fatal(err)
	}
	var first, prev int64
	for rows.Next() {
		var (
			at, rhpIn, rhpOut, syncIn, syncOut, paid int64
			price                                    float64
			version                                  string
			quic                                     bool
		)
		if err := rows.Scan(&at, &rhpIn, &rhpOut, &syncIn, &syncOut, &paid, &price, &version, &quic); err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			first = at
		} else if at != prev+int64(hostd.Period/time.Second) {
			t.Errorf("no period stored between %v and %v", time.Unix(prev, 0), time.Unix(at, 0))
		}
		prev = at
		wIn, wOut, wSyncIn, wSyncOut, wPaid := data.usage(time.Unix(at, 0))
		if rhpIn != wIn || rhpOut != wOut || syncIn != wSyncIn || syncOut != wSyncOut || paid != wPaid || price != 100 || version != "v2.10.2" || !quic {
			t.Errorf("period %v stored %d/%d %d/%d paid %d at %v %s %v; served %d/%d %d/%d paid %d at 100", time.Unix(at, 0),
				rhpIn, rhpOut, syncIn, syncOut, paid, price, version, quic, wIn, wOut, wSyncIn, wSyncOut, wPaid)
		}
	}
	rows.Close()
	// The first read reaches a day back.
	if time.Unix(first, 0).After(start.Add(-24*time.Hour + 2*hostd.Period)) {
		t.Errorf("the first period stored is %v, want a day before %v", time.Unix(first, 0), start)
	}

	// By hand, with the README's SQL, against the report, the API and
	// /metrics.
	until := boundary.Add(time.Minute)
	want := byHand(t, conn, since, until)
	if want.ratioRHP == 0 || want.ratioConsensus == 0 || want.unpaid <= 0 {
		t.Fatalf("the lab's traffic is not in the span compared: %+v", want)
	}
	cli, err := exec.Command(selfexec.Collector(), "report", "-config", os.DevNull, "-sqlite-path", db, "-format", "json",
		"-since", since.Format(time.RFC3339), "-until", until.Format(time.RFC3339)).Output()
	if err != nil {
		t.Fatal(err)
	}
	span := url.Values{"since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}}
	api := get(t, client, "/api/v1/report?"+span.Encode())
	for name, doc := range map[string][]byte{"collector report": cli, "/api/v1/report": api} {
		if got := fromReport(t, doc); got != want {
			t.Errorf("%s shows %+v, by hand %+v", name, got, want)
		}
	}
	billingStart := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.Local)
	if got, want := fromMetrics(t, get(t, client, "/metrics")), byHand(t, conn, billingStart, until); got != want {
		t.Errorf("/metrics shows %+v, by hand %+v", got, want)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}

// figures are the comparisons the daemon shows.
type figures struct {
	ratioRHP, ratioConsensus, unpaid float64
	paid                             int64
}

// byHandSQL is the README's query for the figures of a span, its ends
// bound: since, until (unix seconds), cut at the end of hostd's last
// stored period.
const byHandSQL = `
  WITH span AS (SELECT ?1 AS since, min(?2, (SELECT MAX(timestamp) + 300 FROM hostd_5m)) AS until),
  wire AS (SELECT SUM(siamux_up + quic_up) AS rhp_up, SUM(siamux_down + quic_down) AS rhp_down,
                  SUM(consensus_up + consensus_down) AS consensus
           FROM traffic_minute, span WHERE timestamp >= since AND timestamp < until),
  hostd AS (SELECT SUM(rhp_ingress + rhp_egress) AS rhp,
                   CASE WHEN count(syncer_egress) = count(*) THEN SUM(syncer_ingress + syncer_egress) END AS syncer,
                   CASE WHEN count(paid_egress) = count(*) THEN SUM(paid_egress) END AS paid
            FROM hostd_5m, span WHERE timestamp >= since AND timestamp < until)
  SELECT (rhp_up + rhp_down) * 1.0 / rhp AS ratio_rhp, consensus * 1.0 / syncer AS ratio_consensus,
         paid AS paid_egress, max(0, 1 - paid * 1.0 / rhp_up) AS unpaid_share
  FROM wire, hostd`

// byHand computes the figures of [since, until) from the database with
// byHandSQL.
func byHand(t *testing.T, db *sql.DB, since, until time.Time) figures {
	t.Helper()
	var f figures
	if err := db.QueryRow(byHandSQL, since.Unix(), until.Unix()).Scan(&f.ratioRHP, &f.ratioConsensus, &f.paid, &f.unpaid); err != nil {
		t.Fatal(err)
	}
	return f
}

// listenIn listens on addr in the lab's host namespace.
func listenIn(t *testing.T, l *lab.Lab, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := l.Do(l.HostNS, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ln
}

// waitLog waits up to within for the daemon to have logged msg n times.
func waitLog(t *testing.T, d *labtest.Daemon, msg string, n int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); strings.Count(d.Output(), msg) < n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log %q a %dth time within %v", msg, n, within)
		}
	}
}

// get fetches path from the daemon's HTTP server.
func get(t *testing.T, client *http.Client, path string) []byte {
	t.Helper()
	resp, err := client.Get("http://" + httpListen + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", path, resp.StatusCode, err, body)
	}
	return body
}

// fromReport reads the figures of a report's JSON.
func fromReport(t *testing.T, doc []byte) figures {
	t.Helper()
	var r struct {
		Hostd *struct {
			RatioRHP       *float64 `json:"ratio_rhp"`
			RatioConsensus *float64 `json:"ratio_consensus"`
			Unpaid         *float64 `json:"unpaid_egress_share"`
			Hostd          struct {
				Paid *int64 `json:"paid_egress"`
			} `json:"hostd"`
		} `json:"hostd"`
	}
	if err := json.Unmarshal(doc, &r); err != nil || r.Hostd == nil || r.Hostd.RatioRHP == nil || r.Hostd.RatioConsensus == nil || r.Hostd.Unpaid == nil || r.Hostd.Hostd.Paid == nil {
		t.Fatalf("no hostd figures in the report (%v):\n%s", err, doc)
	}
	return figures{*r.Hostd.RatioRHP, *r.Hostd.RatioConsensus, *r.Hostd.Unpaid, *r.Hostd.Hostd.Paid}
}

// fromMetrics reads the figures of a scrape.
func fromMetrics(t *testing.T, scrape []byte) figures {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	value := func(name, class string) float64 {
		t.Helper()
		f := families[name]
		if f == nil {
			t.Fatalf("no %s in the scrape", name)
		}
		for _, m := range f.GetMetric() {
			matches := class == ""
			for _, l := range m.GetLabel() {
				matches = matches || (l.GetName() == "class" && l.GetValue() == class)
			}
			if matches {
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s{class=%q} in the scrape", name, class)
		return math.NaN()
	}
	return figures{
		ratioRHP:       value("collector_hostd_wire_payload_ratio", "rhp"),
		ratioConsensus: value("collector_hostd_wire_payload_ratio", "consensus"),
		unpaid:         value("collector_hostd_unpaid_egress_ratio", ""),
		paid:           int64(value("collector_hostd_billing_period_paid_egress_bytes", "")),
	}
}
