package httpsync

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// TestSendsEveryRowOnce sends a store's rows, then the rows a later
// flush changed, and the receiver ends up with every local row, each set
// to its local values.
func TestSendsEveryRowOnce(t *testing.T) {
	st := fill(t, 30, someClients())
	r := newReceiver(t)
	var log syncbuf.Buffer
	s := newSyncer(t, st, testConfig(r.URL, &log))
	sent, err := s.SyncOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, tbl := range []store.Table{store.Minutes, store.Hours, store.Days} {
		n, err := st.Pending(t.Context(), tbl, store.Mark{})
		if err != nil {
			t.Fatal(err)
		}
		if sent[tbl] != n {
			t.Errorf("%s: sent %d rows, the store has %d", tbl, sent[tbl], n)
		}
		want += n
	}
	if got, _ := r.stored(); got != want {
		t.Errorf("the receiver holds %d rows, want %d", got, want)
	}
	if n := pendingRows(t, s); n != 0 {
		t.Errorf("%d rows pending after a sync", n)
	}
	again, err := s.SyncOnce(t.Context())
	if err != nil || again.Total() != 0 {
		t.Errorf("a second sync sent %d rows (%v), want none", again.Total(), err)
	}
	if _, err := s.Compare(t.Context()); err == nil {
		t.Error("Verify of a receiver that cannot answer GET passed")
	}
}

// TestFailuresKeepTheCursor: a receiver answering 4xx or 5xx, or not in
// time, has the rows wait, all of them, until it takes them.
func TestFailuresKeepTheCursor(t *testing.T) {
	st := fill(t, 3, someClients())
	r := newReceiver(t)
	var log syncbuf.Buffer
	cfg := testConfig(r.URL, &log)
	cfg.Timeout = 300 * time.Millisecond
	s := newSyncer(t, st, cfg)
	pending := pendingRows(t, s)
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusRequestEntityTooLarge,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable} {
		r.status.Store(int32(status))
		_, err := s.SyncOnce(t.Context())
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("answered %d", status)) {
			t.Errorf("answer %d: SyncOnce = %v, want an error naming the answer", status, err)
		}
		if err != nil && strings.Contains(err.Error(), testToken) {
			t.Errorf("answer %d: the error quotes the token: %v", status, err)
		}
		if n := pendingRows(t, s); n != pending {
			t.Errorf("answer %d: %d rows pending, want all %d", status, n, pending)
		}
	}
	r.status.Store(0)

	stall := make(chan struct{})
	stalling := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { <-stall }))
	defer stalling.Close()
	defer close(stall)
	cfg.URL = stalling.URL
	stalled := newSyncer(t, st, cfg)
	start := time.Now()
	if _, err := stalled.SyncOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("a receiver that does not answer: SyncOnce = %v, want a timeout", err)
	}
	t.Logf("gave up on a stalled receiver after %v (timeout %v)", time.Since(start).Round(time.Millisecond), cfg.Timeout)
	if n := pendingRows(t, stalled); n != pending {
		t.Errorf("after a timeout %d rows pending, want all %d", n, pending)
	}

	if _, err := s.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.stored(); got != pending {
		t.Errorf("the receiver holds %d rows once it took them, want %d", got, pending)
	}
	if n := pendingRows(t, s); n != 0 {
		t.Errorf("%d rows pending once the receiver took them", n)
	}
}

// TestRedirectIsNotFollowed: a 3xx is a failure naming where it points;
// the target of the redirect hears nothing, and the cursor stays.
func TestRedirectIsNotFollowed(t *testing.T) {
	st := fill(t, 2, someClients())
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/moved?key=hidden", status)
		}))
		var log syncbuf.Buffer
		s := newSyncer(t, st, testConfig(redirecting.URL, &log))
		pending := pendingRows(t, s)
		_, err := s.SyncOnce(t.Context())
		redirecting.Close()
		if err == nil || !strings.Contains(err.Error(), other.URL+"/moved") || !strings.Contains(err.Error(), "not followed") {
			t.Errorf("answer %d: SyncOnce = %v, want an error naming %s/moved", status, err, other.URL)
		}
		if err != nil && strings.Contains(err.Error(), "hidden") {
			t.Errorf("answer %d: the error quotes the query of the redirect: %v", status, err)
		}
		if n := pendingRows(t, s); n != pending {
			t.Errorf("answer %d: %d rows pending, want all %d", status, n, pending)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirects were followed %d times", n)
	}
}

// TestBatchBounds: every body holds at most BatchRows rows and
// BatchBytes bytes, with the longest addresses and largest counters, and
// the batches together carry every row.
func TestBatchBounds(t *testing.T) {
	st := fill(t, 5, longClients())
	r := newReceiver(t)
	var log syncbuf.Buffer
	for _, bound := range []struct{ rows, bytes int }{{7, 1 << 20}, {5000, 6000}, {3, 2000}} {
		r.mu.Lock()
		r.bodies, r.rows = nil, map[string]map[string]any{}
		r.mu.Unlock()
		cfg := testConfig(r.URL, &log)
		cfg.HostID = "host-" + strings.Repeat("x", 100)
		cfg.BatchRows, cfg.BatchBytes = bound.rows, bound.bytes
		s := newSyncer(t, st, cfg)
		sent, err := s.SyncOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held, bodies := r.stored()
		total := 0
		for _, b := range bodies {
			rows := strings.Count(string(b), `"timestamp":`)
			total += rows
			if rows > bound.rows || len(b) > bound.bytes {
				t.Errorf("bound %d rows, %d bytes: a body of %d rows, %d bytes", bound.rows, bound.bytes, rows, len(b))
			}
		}
		if total != sent.Total() || held != total {
			t.Errorf("bound %+v: %d rows in %d bodies, %d sent, %d held", bound, total, len(bodies), sent.Total(), held)
		}
		t.Logf("bound %d rows, %d bytes: %d rows in %d bodies", bound.rows, bound.bytes, total, len(bodies))
	}
	if _, err := New(st, Config{URL: r.URL, HostID: "h", BatchBytes: 300}); err == nil || !strings.Contains(err.Error(), "accepted") {
		t.Errorf("a batch too small for one row: New = %v", err)
	}
}

// TestTokenNeverShown: the token is in no log line, and in no error even
// when the receiver echoes it back.
func TestTokenNeverShown(t *testing.T) {
	st := fill(t, 2, someClients())
	r := newReceiver(t)
	r.status.Store(http.StatusInternalServerError)
	var log syncbuf.Buffer
	cfg := testConfig(r.URL, &log)
	cfg.MaxBackoff = 50 * time.Millisecond
	s := newSyncer(t, st, cfg)
	done := make(chan error)
	runCtx, stop := context.WithCancel(t.Context())
	go func() { done <- s.Run(runCtx) }()
	for s.Stats().Failures < 3 {
		time.Sleep(20 * time.Millisecond)
	}
	r.status.Store(0)
	for s.Stats().Failing {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	logs := log.String()
	if strings.Contains(logs, testToken) {
		t.Errorf("the token was logged:\n%s", logs)
	}
	if strings.Count(logs, "cannot sync to the HTTP endpoint") != 1 || strings.Count(logs, "syncing to the HTTP endpoint again") != 1 {
		t.Errorf("want the outage logged once as it started and once as it ended:\n%s", logs)
	}
	if !strings.Contains(logs, "xxxxx") {
		t.Errorf("want the echoed token masked in the log:\n%s", logs)
	}
}

// TestAnswersAreReadBounded: a receiver that answers an endless body
// has its answer read up to a bound, and quoted in the error shorter
// still; the sync fails rather than reading on.
func TestAnswersAreReadBounded(t *testing.T) {
	st := fill(t, 2, someClients())
	var written atomic.Int64
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		line := []byte(strings.Repeat("x", 1023) + "y")
		for r.Context().Err() == nil && written.Load() < 1<<30 {
			n, err := w.Write(line)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	var log syncbuf.Buffer
	s := newSyncer(t, st, testConfig(endless.URL, &log))
	_, err := s.SyncOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "answered 500") {
		t.Fatalf("SyncOnce = %v, want the 500", err)
	}
	if len(err.Error()) > quotedAnswer+200 {
		t.Errorf("an error of %d bytes quotes too much of the answer", len(err.Error()))
	}
	if n := written.Load(); n >= 1<<30 {
		t.Errorf("the receiver wrote %d bytes before the sync stopped reading", n)
	}
}

// longClients are clients with addresses as long as addresses get.
func longClients() []traffic.Client {
	var out []traffic.Client
	for i := range 20 {
		out = append(out, traffic.ClientOf(netip.MustParseAddr(fmt.Sprintf("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff%02x", i))))
	}
	return out
}

// TestMaxRowBytes: the bound of a row's bytes holds for the longest row
// there can be.
func TestMaxRowBytes(t *testing.T) {
	counters := make([]uint64, len(store.CounterNames()))
	for i := range counters {
		counters[i] = math.MaxUint64
	}
	for _, addr := range []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.255"} {
		for _, at := range []int64{math.MinInt64, math.MaxInt64} {
			r := traffic.Row{Start: time.Unix(at, 0), Client: traffic.ClientOf(netip.MustParseAddr(addr)), Traffic: store.TrafficOf(counters)}
			if n := len(appendRow([]byte(","), &r)); n > maxRowBytes() {
				t.Errorf("a row of %d bytes, over the bound of %d: %s", n, maxRowBytes(), appendRow(nil, &r))
			}
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://fleet.example/ingest", true},
		{"https://fleet.example:8443/ingest?code=abc", true},
		{"http://127.0.0.1:8080/", true},
		{"http://[::1]:8080/", true},
		{"http://localhost/ingest", true},
		{"http://fleet.example/ingest", false},
		{"http://192.0.2.1/ingest", false},
		{"ftp://fleet.example/", false},
		{"fleet.example/ingest", false},
		{"https://", false},
		{"", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := ParseURL(tc.url)
			if (err == nil) != tc.ok {
				t.Errorf("ParseURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
			}
			if err != nil && (!strings.Contains(err.Error(), "accepted") || strings.Contains(err.Error(), "\n")) {
				t.Errorf("ParseURL(%q) = %q, want one line naming what is accepted", tc.url, err)
			}
		})
	}
}
