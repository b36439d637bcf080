package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/floodtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// errorBody is the body of an error answer with msg.
func errorBody(msg string) string {
	return fmt.Sprintf("{\n  \"error\": %q\n}\n", msg)
}

// A report of more rows than the cap is refused with a 400 naming the cap
// and how to ask for less; one within it is answered.
func TestRowCap(t *testing.T) {
	s := newServer(t, testConfig(t))
	h := s.Handler()
	tests := []struct {
		target  string
		maxRows int
		want    string // "" for 200
	}{
		{"/api/v1/report?by=hour&since=1990-01-01", maxRows,
			"more than 10000 hours in this span, the most one answer holds; ask for a later since= or by=day"},
		{"/api/v1/report?by=hour&since=0001-01-01", maxRows,
			"more than 10000 hours in this span, the most one answer holds; ask for a later since= or by=day"},
		{"/api/v1/report?by=day&since=0001-01-01", maxRows,
			"more than 10000 days in this span, the most one answer holds; ask for a later since= or by=week"},
		{"/api/v1/report?by=week&since=0001-01-01", maxRows,
			"more than 10000 weeks in this span, the most one answer holds; ask for a later since= or by=month"},
		{"/api/v1/report?by=month&since=0001-01-01", maxRows,
			"more than 10000 months in this span, the most one answer holds; ask for a later since="},
		{"/api/v1/report?by=hour&since=2025-03-04", maxRows, ""}, // 8,761 hours
		{"/api/v1/report?by=month&since=1990-01-01", maxRows, ""},
		// The fixture's four clients (other among them) in three /24s
		// and a /48, over 30 days.
		{"/api/v1/report?by=client&since=30d", 3,
			"more than 3 clients in this span, the most one answer holds; ask for top=N (N up to 3), a later since= or client="},
		{"/api/v1/top?since=30d&top=0", 3,
			"more than 3 clients in this span, the most one answer holds; ask for top=N (N up to 3), a later since= or client="},
		{"/api/v1/top?since=30d&top=1000", 3,
			"more than 3 clients in this span, the most one answer holds; ask for top=N (N up to 3), a later since= or client="},
		{"/api/v1/report?by=prefix&since=30d", 3,
			"more than 3 prefixes in this span, the most one answer holds; ask for top=N (N up to 3), a later since= or client="},
		{"/api/v1/top?since=30d&top=3", 3, ""},
		{"/api/v1/top?since=30d&top=1000", 4, ""},
		{"/api/v1/report?by=client&since=30d", 4, ""},
		{"/api/v1/series?span=7d", 167,
			"more than 167 hours in this span, the most one answer holds; ask for a later since= or by=day"},
		// Four clients moved bytes since the last flush.
		{"/api/v1/live?top=0", 3,
			"more than 3 clients counted since the last flush, the most one answer holds; ask for top=N (N up to 3)"},
		{"/api/v1/live?top=3", 3, ""},
		{"/api/v1/live?top=0", 4, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s max %d", tt.target, tt.maxRows), func(t *testing.T) {
			s.maxRows = tt.maxRows
			w := get(h, http.MethodGet, tt.target)
			switch {
			case tt.want == "" && w.Code != http.StatusOK:
				t.Errorf("status %d, want 200: %s", w.Code, w.Body)
			case tt.want != "" && (w.Code != http.StatusBadRequest || w.Body.String() != errorBody(tt.want)):
				t.Errorf("status %d, body %s; want 400 and %q", w.Code, w.Body, tt.want)
			}
		})
	}
}

// Past maxHeavy requests reading the traffic at once, the next is
// refused with 503 and Retry-After; the index, /metrics and the dashboard
// are not held up, and once a reader is done the next one is answered.
func TestHeavyLimit(t *testing.T) {
	cfg := testConfig(t)
	entered, release := make(chan struct{}), make(chan struct{})
	cfg.Live = func() (traffic.OpenPeriod, error) {
		entered <- struct{}{}
		<-release
		return liveSamples()
	}
	h := newServer(t, cfg).Handler()
	var readers sync.WaitGroup
	codes := make(chan int, maxHeavy)
	for range maxHeavy {
		readers.Go(func() { codes <- get(h, http.MethodGet, "/api/v1/live").Code })
	}
	for range maxHeavy {
		<-entered
	}
	for _, target := range []string{"/api/v1/report", "/api/v1/top", "/api/v1/series", "/api/v1/billing", "/api/v1/live"} {
		w := get(h, http.MethodGet, target)
		want := errorBody("4 requests are reading the traffic, the most at once; retry in 1 s")
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || w.Body.String() != want {
			t.Errorf("%s: status %d, Retry-After %q, body %s; want 503, 1 and %s", target, w.Code, w.Header().Get("Retry-After"), w.Body, want)
		}
	}
	for _, target := range []string{"/api/v1/", "/metrics", "/"} {
		if w := get(h, http.MethodGet, target); w.Code != http.StatusOK {
			t.Errorf("%s while the readers run: status %d, want 200", target, w.Code)
		}
	}
	close(release)
	readers.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("a reader that got its turn: status %d, want 200", code)
		}
	}
	if w := get(h, http.MethodGet, "/api/v1/report"); w.Code != http.StatusOK {
		t.Errorf("after the readers: status %d, want 200: %s", w.Code, w.Body)
	}
}

// watchedSource is a store whose TopClients says when it is called and
// what the store answered.
type watchedSource struct {
	*store.Store
	entered  chan struct{}
	answered chan error
}

func (w watchedSource) TopClients(ctx context.Context, q store.Query, n int, classes []traffic.Class) (store.Top, error) {
	w.entered <- struct{}{}
	top, err := w.Store.TopClients(ctx, q, n, classes)
	w.answered <- err
	return top, err
}

// flooded returns a server's configuration on a database a flood of
// forged addresses filled yesterday, whose report by client reads a
// hundred thousand rows: long enough to be stopped half way.
func flooded(t *testing.T) (Config, watchedSource) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "collector.db")
	y, m, d := time.Now().Date()
	if err := floodtest.WriteDay(t.Context(), path, 100_000, time.Date(y, m, d-1, 0, 0, 0, 0, time.Local)); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src := watchedSource{Store: st, entered: make(chan struct{}, 1), answered: make(chan error, 1)}
	cfg := testConfig(t)
	cfg.Reports, cfg.Now = src, time.Now
	return cfg, src
}

// floodedReport asks for every client of the flood.
const floodedReport = "/api/v1/report?by=client&since=2d"

// A client that goes away stops its report's query in SQLite, which the
// same query for a client that stays runs to its end (a 400: the flood's
// clients are far more than the cap). Neither is logged as a failure.
func TestClientLeavingStopsTheQuery(t *testing.T) {
	cfg, src := flooded(t)
	journal := &syncbuf.Buffer{}
	cfg.Log = slog.New(slog.NewTextHandler(journal, nil))
	base := serve(t, newServer(t, cfg), "http")

	ctx, leave := context.WithCancel(t.Context())
	asked := make(chan error, 1)
	go func() {
		_, err := fetch(ctx, http.DefaultClient, base+floodedReport, "", "")
		asked <- err
	}()
	<-src.entered
	leave()
	if err := <-src.answered; !errors.Is(err, context.Canceled) {
		t.Errorf("the store answered %v to a client that left; want the query cancelled", err)
	}
	if err := <-asked; !errors.Is(err, context.Canceled) {
		t.Errorf("the client that left: %v", err)
	}

	code, err := fetch(t.Context(), http.DefaultClient, base+floodedReport, "", "")
	<-src.entered
	if err != nil || code != http.StatusBadRequest {
		t.Errorf("the client that stayed: status %d, %v; want 400", code, err)
	}
	if err := <-src.answered; !errors.Is(err, store.ErrLimit) {
		t.Errorf("the store answered %v to a client that stayed; want ErrLimit, the query run to its end", err)
	}
	if strings.Contains(journal.String(), "level=ERROR") {
		t.Errorf("journal:\n%s", journal)
	}
}

// A report that takes longer than the request's deadline is stopped in
// SQLite and answered 503.
func TestDeadlineStopsTheQuery(t *testing.T) {
	cfg, src := flooded(t)
	s := newServer(t, cfg)
	s.requestTimeout = 10 * time.Millisecond
	w := get(s.Handler(), http.MethodGet, floodedReport)
	<-src.entered
	if err := <-src.answered; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the store answered %v past the deadline; want the query stopped", err)
	}
	want := errorBody("the answer took longer than 10ms, the most one may take; ask for less, such as a later since= or top=N")
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != want {
		t.Errorf("status %d, body %s; want 503 and %s", w.Code, w.Body, want)
	}
}

// The Host header must name this server: its listen address, loopback,
// or a name of HTTP_ALLOWED_HOSTS; an IP address is this server's when
// the connection came to it. Anything else, on any path, is a 421.
func TestHostCheck(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = "collector.lan:9986"
	cfg.AllowedHosts = []string{"Collector.Example.Net", "192.0.2.7", "[2001:db8::7]"}
	h := newServer(t, cfg).Handler()
	local := &net.TCPAddr{IP: net.ParseIP("203.0.113.50"), Port: 9986}
	tests := []struct {
		host string
		want int
	}{
		{"localhost", http.StatusOK},
		{"localhost:9986", http.StatusOK},
		{"LocalHost.", http.StatusOK},
		{"127.0.0.1", http.StatusOK},
		{"127.0.0.1:9986", http.StatusOK},
		{"[::1]", http.StatusOK},
		{"[::1]:9986", http.StatusOK},
		{"collector.lan:9986", http.StatusOK},
		{"collector.example.net", http.StatusOK},
		{"COLLECTOR.example.net:443", http.StatusOK},
		{"192.0.2.7:9986", http.StatusOK},
		{"[2001:db8::7]:9986", http.StatusOK},
		{"203.0.113.50:9986", http.StatusOK}, // the address the connection came to
		{"203.0.113.51:9986", http.StatusMisdirectedRequest},
		{"evil.example", http.StatusMisdirectedRequest},
		{"evil.example:9986", http.StatusMisdirectedRequest},
		{"localhost.evil.example", http.StatusMisdirectedRequest},
		{"collector.example.net.evil.example", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/billing", "/metrics", "/"} {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.Host = tt.host
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("Host %q, %s: status %d, want %d", tt.host, path, w.Code, tt.want)
			}
			want := errorBody(fmt.Sprintf("host %q is not a name of this server; accepted: the address it listens on, localhost, 127.0.0.1, [::1] and the names of HTTP_ALLOWED_HOSTS", tt.host))
			if tt.want == http.StatusMisdirectedRequest && w.Body.String() != want {
				t.Errorf("Host %q: body %s, want %s", tt.host, w.Body, want)
			}
		}
	}
}

// A real connection: a foreign Host is refused, the server's own address
// answered.
func TestHostCheckServed(t *testing.T) {
	base := serve(t, newServer(t, testConfig(t)), "http")
	for host, want := range map[string]int{"": http.StatusOK, "evil.example:9986": http.StatusMisdirectedRequest} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", req.Host, resp.StatusCode, want)
		}
	}
}
