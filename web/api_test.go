package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/internal/testkit/golden"
	"github.com/back2basic/collector/internal/testkit/storetest"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// berlin is where the tests' operator lives, and now a Wednesday morning
// there.
var berlin, now = storetest.Berlin, storetest.Now

// billingDay starts the billing period holding now on February 15.
const billingDay = 15

var (
	renter  = traffic.ClientOf(netip.MustParseAddr("198.51.100.7"))
	peer    = traffic.ClientOf(netip.MustParseAddr("2001:db8::42"))
	unnamed = traffic.ClientOf(netip.MustParseAddr("203.0.113.9"))
)

// classTraffic returns Traffic with bytes of one class, and a packet per
// KiB.
func classTraffic(c traffic.Class, down, up uint64) traffic.Traffic {
	var t traffic.Traffic
	t[c][traffic.Down] = traffic.Tally{Bytes: down, Packets: down/1024 + 1}
	t[c][traffic.Up] = traffic.Tally{Bytes: up, Packets: up/1024 + 1}
	return t
}

// event is traffic counted in the minute at.
type event struct {
	at      time.Time
	samples []traffic.Sample
}

// events reach back four months, so that each series span reads a
// different mix of minute, hourly and daily rows.
var events = []event{
	{time.Date(2025, 11, 10, 12, 0, 0, 0, berlin), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 2<<30, 8<<30)},
	}},
	{time.Date(2026, 2, 20, 12, 0, 0, 0, berlin), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 5<<30, 40<<30)},
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 3<<20, 2<<20)},
	}},
	{time.Date(2026, 3, 3, 14, 0, 0, 0, berlin), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 300<<20, 2<<30)},
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 12<<20, 9<<20)},
	}},
	{time.Date(2026, 3, 4, 8, 15, 0, 0, berlin), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 100<<20, 1<<30)},
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 1<<20, 1<<20)},
		{Client: traffic.Other, Traffic: classTraffic(traffic.QUIC, 10<<10, 20<<10)},
	}},
	{time.Date(2026, 3, 4, 10, 29, 0, 0, berlin), []traffic.Sample{
		{Client: unnamed, Traffic: classTraffic(traffic.QUIC, 5<<20, 50<<20)},
	}},
}

// fixture stores events the way the daemon does (storetest.Fill) and
// returns the file opened read-only, as reports read it.
func fixture(t *testing.T) *store.Store {
	t.Helper()
	ro, err := store.OpenReadOnly(fixturePath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

// fixturePath stores events the way the daemon does and returns the
// file's path.
func fixturePath(t *testing.T) string {
	t.Helper()
	var periods []traffic.Period
	for _, e := range events {
		periods = append(periods, storetest.Minute(e.at, e.samples...))
	}
	return storetest.Fill(t, periods, now, traffic.Name{Addr: renter.Addr(), DNS: "renter-a.example", Found: now})
}

// flushedAt is when the live samples' period started.
var flushedAt = now.Add(-20 * time.Second)

// liveSamples are what the kernel counted since flushedAt: more clients
// than the tests' top, and one that moved nothing.
func liveSamples() (traffic.OpenPeriod, error) {
	return traffic.OpenPeriod{Since: flushedAt, Samples: []traffic.Sample{
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 4<<10, 2<<10)},
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 3<<20, 30<<20)},
		{Client: unnamed},
		{Client: traffic.Other, Traffic: classTraffic(traffic.QUIC, 1<<10, 1<<10)},
		{Client: unnamed, Traffic: classTraffic(traffic.QUIC, 1<<20, 2<<20)},
	}}, nil
}

// testConfig is a server on the fixture, with every part served.
func testConfig(t *testing.T) Config {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "collector_test_up", Help: "A test series."}, func() float64 { return 1 }))
	reports := fixture(t)
	cycle, err := billing.NewCycle(billingDay, berlin)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Listen:  "127.0.0.1:0",
		Log:     slog.New(slog.DiscardHandler),
		Metrics: reg,
		Reports: reports,
		Live:    liveSamples,
		Names:   reports.Names,
		Billing: cycle,
		Now:     func() time.Time { return now },
		Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "dashboard at "+r.URL.Path)
		}),
		Egress: &report.EgressAsk{Pricing: testPricing, Prices: hostdPrice(150)},
		Alerts: func() []alert.Alert { return []alert.Alert{firingQuota} },
		Quotas: func() []alert.QuotaUse {
			return []alert.QuotaUse{{Direction: "up", Used: 60 << 30, Limit: 100 << 30, Projected: 150 << 30}}
		},
	}
}

// testPricing is the provider's: 2.5 a TB beyond 10 GB a period, a
// siacoin worth 0.004.
var testPricing = cost.Pricing{PerTB: 2.5, FreeBytes: 10e9, SiacoinPrice: 0.004}

// hostdPrice is hostd's egress price in SC per TB, the same at any time.
type hostdPrice float64

func (p hostdPrice) EgressPrice(time.Time) (float64, bool) { return float64(p), true }

// firingQuota is the alert the test server has firing.
var firingQuota = alert.Alert{ID: "5f0c2a91d3b7e4a8", Status: alert.Firing, Kind: alert.QuotaProjection, Subject: "up",
	StartedAt: now.Add(-time.Hour), Quota: &alert.QuotaDetails{Threshold: 0.8, Quota: 100 << 30, Used: 60 << 30, Share: 1.5,
		Projected: 150 << 30, PeriodStart: time.Date(2026, 2, 15, 0, 0, 0, 0, berlin), PeriodEnd: time.Date(2026, 3, 15, 0, 0, 0, 0, berlin)}}

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// get sends h a request with method for target.
func get(h http.Handler, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, "http://localhost"+target, nil))
	return w
}

// Each endpoint's answer, errors included, as the status and the body.
func TestGolden(t *testing.T) {
	h := newServer(t, testConfig(t)).Handler()
	tests := []struct {
		name, target string
		status       int
	}{
		{"index", "/api/v1/", http.StatusOK},
		{"report today", "/api/v1/report", http.StatusOK},
		{"report month by day siamux", "/api/v1/report?period=month&by=day&class=siamux", http.StatusOK},
		{"report billing by class", "/api/v1/report?period=billing&by=class", http.StatusOK},
		{"top", "/api/v1/top?since=30d", http.StatusOK},
		{"top 1", "/api/v1/top?since=30d&top=1", http.StatusOK},
		{"series all", "/api/v1/series?span=all", http.StatusOK},
		{"series 1d one client quic", "/api/v1/series?client=203.0.113.9&class=quic", http.StatusOK},
		{"billing", "/api/v1/billing", http.StatusOK},
		{"alerts", "/api/v1/alerts", http.StatusOK},
		{"alerts parameter", "/api/v1/alerts?kind=quota", http.StatusBadRequest},
		{"live top 2", "/api/v1/live?top=2", http.StatusOK},
		{"top role renter", "/api/v1/top?since=30d&role=renter", http.StatusOK},
		{"report by role", "/api/v1/report?since=30d&by=role", http.StatusOK},

		{"report bad by", "/api/v1/report?by=year", http.StatusBadRequest},
		{"report format", "/api/v1/report?format=csv", http.StatusBadRequest},
		{"top by day", "/api/v1/top?by=day", http.StatusBadRequest},
		{"report bad role", "/api/v1/report?role=landlord", http.StatusBadRequest},
		{"report role by prefix", "/api/v1/report?by=prefix&role=renter", http.StatusBadRequest},
		{"series bad span", "/api/v1/series?span=2d", http.StatusBadRequest},
		{"series two spans", "/api/v1/series?span=1d&span=7d", http.StatusBadRequest},
		{"series since", "/api/v1/series?span=7d&since=2026-03-01", http.StatusBadRequest},
		{"series bad client", "/api/v1/series?client=nobody", http.StatusBadRequest},
		{"billing period", "/api/v1/billing?period=last-billing", http.StatusBadRequest},
		{"live bad top", "/api/v1/live?top=-1", http.StatusBadRequest},
		{"live two tops", "/api/v1/live?top=1&top=2", http.StatusBadRequest},
		{"index parameter", "/api/v1/?v=2", http.StatusBadRequest},
		{"no endpoint", "/api/v1/clients", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(h, http.MethodGet, tt.target)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q, want application/json", got)
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Errorf("not JSON: %s", w.Body)
			}
			golden.Check(t, "api "+tt.name, w.Body.String())
		})
	}
}

// The report endpoint answers what collector report -format json writes
// for the same flags: the same Request, the same writer.
func TestReportIsCollectorReport(t *testing.T) {
	cfg := testConfig(t)
	h := newServer(t, cfg).Handler()
	got := get(h, http.MethodGet, "/api/v1/report?since=2026-02-01&by=week&client=198.51.100.7").Body.String()
	req := report.Request{
		Span: report.RangeSpan(time.Date(2026, 2, 1, 0, 0, 0, 0, berlin), time.Time{}, now),
		By:   report.ByWeek, Clients: []traffic.Client{renter}, Now: now,
	}
	res, err := report.Build(t.Context(), cfg.Reports, req)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := res.WriteJSON(&want); err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Errorf("got:\n%s\nwant:\n%s", got, want.String())
	}
}

// seriesDoc is what the series tests read of an answer.
type seriesDoc struct {
	Span  string `json:"span"`
	Since string `json:"since"`
	By    string `json:"by"`
	Rows  []struct {
		Start string `json:"start"`
		Bytes uint64 `json:"bytes"`
	} `json:"rows"`
	Total struct {
		Bytes uint64 `json:"bytes"`
	} `json:"total"`
}

// Each span has its rows, the last holding now, and the traffic of the
// events in it.
func TestSeriesSpans(t *testing.T) {
	h := newServer(t, testConfig(t)).Handler()
	tests := []struct {
		span   string
		by     string
		rows   int
		since  time.Time
		events []int // indexes into events
	}{
		{"1d", "hour", 24, time.Date(2026, 3, 3, 11, 0, 0, 0, berlin), []int{2, 3, 4}},
		{"7d", "hour", 168, time.Date(2026, 2, 25, 11, 0, 0, 0, berlin), []int{2, 3, 4}},
		{"1m", "day", 30, time.Date(2026, 2, 3, 0, 0, 0, 0, berlin), []int{1, 2, 3, 4}},
		{"3m", "day", 90, time.Date(2025, 12, 5, 0, 0, 0, 0, berlin), []int{1, 2, 3, 4}},
		{"1y", "week", 53, time.Date(2025, 3, 3, 0, 0, 0, 0, berlin), []int{0, 1, 2, 3, 4}},
		{"all", "month", 5, time.Date(2025, 11, 1, 0, 0, 0, 0, berlin), []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.span, func(t *testing.T) {
			w := get(h, http.MethodGet, "/api/v1/series?span="+tt.span)
			var doc seriesDoc
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
				t.Fatalf("%v: %s", err, w.Body)
			}
			var want uint64
			for _, i := range tt.events {
				for _, s := range events[i].samples {
					want += s.Traffic.Bytes()
				}
			}
			if doc.Span != tt.span || doc.By != tt.by || len(doc.Rows) != tt.rows || doc.Since != tt.since.Format(time.RFC3339) {
				t.Errorf("span %q by %q, %d rows since %s; want %q by %q, %d rows since %s",
					doc.Span, doc.By, len(doc.Rows), doc.Since, tt.span, tt.by, tt.rows, tt.since.Format(time.RFC3339))
			}
			if doc.Total.Bytes != want {
				t.Errorf("total %d bytes, want %d", doc.Total.Bytes, want)
			}
			if last := doc.Rows[len(doc.Rows)-1].Start; last > now.Format(time.RFC3339) {
				t.Errorf("last row starts at %s, after now", last)
			}
		})
	}
}

// failingSource fails every read, as a database gone missing would.
type failingSource struct{}

var errRead = errors.New("read /var/lib/collector/collector.db: disk I/O error")

func (failingSource) TopClients(context.Context, store.Query, int, []traffic.Class) (store.Top, error) {
	return store.Top{}, errRead
}

func (failingSource) Series(context.Context, store.Query, store.Period, *time.Location) ([]store.Bucket, error) {
	return nil, errRead
}

// The names only adorn the live counters: when they cannot be read, the
// counters are served without them and the journal says why.
func TestLiveWithoutNames(t *testing.T) {
	var journal bytes.Buffer
	cfg := testConfig(t)
	cfg.Log = slog.New(slog.NewTextHandler(&journal, nil))
	cfg.Names = func(context.Context, []traffic.Client) (map[traffic.Client]string, error) { return nil, errRead }
	w := get(newServer(t, cfg).Handler(), http.MethodGet, "/api/v1/live?top=2")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), renter.String()) || strings.Contains(w.Body.String(), "renter-a.example") {
		t.Errorf("status %d, body %s; want the live clients without names", w.Code, w.Body)
	}
	if !strings.Contains(journal.String(), errRead.Error()) {
		t.Errorf("journal %q lacks the cause", journal.String())
	}
}

// A failure to read is a 500 whose cause, naming files, goes to the
// journal and not to the client.
func TestReadFailure(t *testing.T) {
	var journal bytes.Buffer
	cfg := testConfig(t)
	cfg.Log = slog.New(slog.NewTextHandler(&journal, nil))
	cfg.Reports = failingSource{}
	cfg.Live = func() (traffic.OpenPeriod, error) { return traffic.OpenPeriod{}, errRead }
	h := newServer(t, cfg).Handler()
	for _, target := range []string{"/api/v1/report", "/api/v1/top", "/api/v1/series?span=7d", "/api/v1/billing", "/api/v1/live"} {
		t.Run(target, func(t *testing.T) {
			journal.Reset()
			w := get(h, http.MethodGet, target)
			if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "collector.db") {
				t.Errorf("status %d, body %s; want 500 without the cause", w.Code, w.Body)
			}
			if !strings.Contains(journal.String(), errRead.Error()) {
				t.Errorf("journal %q lacks the cause", journal.String())
			}
		})
	}
}

// Every response carries the security headers; API answers are never
// cached; only GET and HEAD are served.
func TestHeadersAndMethods(t *testing.T) {
	h := newServer(t, testConfig(t)).Handler()
	tests := []struct {
		method, target string
		status         int
		api            bool
	}{
		{http.MethodGet, "/api/v1/billing", http.StatusOK, true},
		{http.MethodGet, "/api/v1/report?by=year", http.StatusBadRequest, true},
		{http.MethodGet, "/api/v2/", http.StatusNotFound, true},
		{http.MethodGet, "/", http.StatusOK, false},
		{http.MethodGet, "/metrics", http.StatusOK, false},
		{http.MethodPost, "/api/v1/report", http.StatusMethodNotAllowed, false},
		{http.MethodPut, "/metrics", http.StatusMethodNotAllowed, false},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed, false},
		{http.MethodOptions, "/api/v1/", http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			w := get(h, tt.method, tt.target)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			for k, v := range securityHeaders {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if got, want := w.Header().Get("Cache-Control") == "no-store", tt.api; got != want {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
			if tt.status == http.StatusMethodNotAllowed {
				if got := w.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow %q, want GET, HEAD", got)
				}
				if want := "{\n  \"error\": \"method " + tt.method + ": accepted: GET, HEAD; the server is read-only\"\n}\n"; w.Body.String() != want {
					t.Errorf("body %s, want %s", w.Body, want)
				}
			}
		})
	}
}

// HEAD answers GET's status and headers without the body.
func TestHead(t *testing.T) {
	srv := httptest.NewServer(newServer(t, testConfig(t)).Handler())
	defer srv.Close()
	do := func(method string) (*http.Response, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/api/v1/billing", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	getResp, getBody := do(http.MethodGet)
	headResp, headBody := do(http.MethodHead)
	if headResp.StatusCode != http.StatusOK || len(headBody) != 0 || !json.Valid(getBody) {
		t.Errorf("HEAD: status %d, %d bytes of body; want 200 and none", headResp.StatusCode, len(headBody))
	}
	for _, name := range []string{"Content-Type", "Cache-Control"} {
		if head, get := headResp.Header.Get(name), getResp.Header.Get(name); head != get {
			t.Errorf("%s: HEAD %q, GET %q", name, head, get)
		}
	}
}

// /metrics is the gatherer's, the dashboard is served at / and below,
// and either is left out when not given.
func TestMetricsAndDashboard(t *testing.T) {
	cfg := testConfig(t)
	h := newServer(t, cfg).Handler()
	if w := get(h, http.MethodGet, "/metrics"); !strings.Contains(w.Body.String(), "collector_test_up 1") {
		t.Errorf("/metrics: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/", "/assets/app.js"} {
		if w := get(h, http.MethodGet, path); w.Body.String() != "dashboard at "+path {
			t.Errorf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	cfg.Metrics, cfg.Dashboard, cfg.Live = nil, nil, nil
	h = newServer(t, cfg).Handler()
	for _, path := range []string{"/metrics", "/", "/api/v1/live"} {
		if w := get(h, http.MethodGet, path); w.Code != http.StatusNotFound {
			t.Errorf("%s without it: status %d, want 404", path, w.Code)
		}
	}
	if w := get(h, http.MethodGet, "/api/v1/"); strings.Contains(w.Body.String(), "/live") {
		t.Errorf("the index lists /api/v1/live, which is not served:\n%s", w.Body)
	}
}

// The billing period's egress the API shows equals what SQL of the test's
// own makes of the database: the host's up bytes, from the hourly rows
// before the minute rows kept and the minute rows after, and their cost.
func TestBillingEgressByHand(t *testing.T) {
	path := fixturePath(t)
	cfg := testConfig(t)
	ro, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	cfg.Reports = ro
	h := newServer(t, cfg).Handler()
	var doc struct {
		Rows []struct {
			Class string  `json:"class"`
			Bytes uint64  `json:"egress_bytes"`
			Cost  float64 `json:"cost"`
		}
		Egress struct {
			Bytes     uint64   `json:"bytes"`
			Cost      float64  `json:"cost"`
			ValueSC   *float64 `json:"value_sc"`
			Margin    *float64 `json:"margin"`
			Projected uint64   `json:"projected_up_bytes"`
		}
	}
	if err := json.Unmarshal(get(h, http.MethodGet, "/api/v1/billing").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Date(2026, 2, 15, 0, 0, 0, 0, berlin).Unix()
	var up uint64
	err = db.QueryRow(`SELECT
		(SELECT coalesce(SUM(consensus_up + siamux_up + quic_up), 0) FROM traffic_hourly
			WHERE timestamp >= ?1 AND timestamp < (SELECT minute_since FROM rollup_state)) +
		(SELECT coalesce(SUM(consensus_up + siamux_up + quic_up), 0) FROM traffic_minute
			WHERE timestamp >= max(?1, (SELECT minute_since FROM rollup_state)))`, start).Scan(&up)
	if err != nil {
		t.Fatal(err)
	}
	wantCost := (float64(up) - 10e9) / 1e12 * 2.5
	wantValue := float64(up) / 1e12 * 150
	if up < 40<<30 || doc.Egress.Bytes != up || !near(doc.Egress.Cost, wantCost) || doc.Egress.ValueSC == nil || !near(*doc.Egress.ValueSC, wantValue) ||
		doc.Egress.Margin == nil || !near(*doc.Egress.Margin, wantValue*0.004-wantCost) {
		t.Errorf("egress %+v; by hand %d bytes costing %v, worth %v SC", doc.Egress, up, wantCost, wantValue)
	}
	whole, passed := float64(time.Date(2026, 3, 15, 0, 0, 0, 0, berlin).Unix()-start), float64(now.Unix()-start)
	if want := uint64(math.Round(float64(up) * whole / passed)); doc.Egress.Projected != want {
		t.Errorf("projected %d, by hand %d", doc.Egress.Projected, want)
	}
	var rows uint64
	var rowCost float64
	for _, r := range doc.Rows {
		rows += r.Bytes
		rowCost += r.Cost
	}
	if rows != up || !near(rowCost, wantCost) {
		t.Errorf("the classes' egress adds up to %d costing %v, want %d costing %v", rows, rowCost, up, wantCost)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
