package httpsync

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// testToken is the token of the tests' receivers.
const testToken = "s3cret-t0ken-of-the-tests"

// fill writes hours of minute rows of clients into a new store, as the
// daemon's flushes do, so that rollups fill the hourly and daily tables.
func fill(tb testing.TB, hours int, clients []traffic.Client) *store.Store {
	tb.Helper()
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	st, err := store.Open(filepath.Join(tb.TempDir(), "collector.db"), store.Options{
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	for h := range hours {
		start := now
		now = now.Add(time.Hour)
		var rows []traffic.Row
		for m := start; m.Before(now); m = m.Add(10 * time.Minute) {
			for i, c := range clients {
				rows = append(rows, traffic.Row{Start: m, Client: c, Traffic: dbtest.Seeded(uint64(h*100 + m.Minute() + i))})
			}
		}
		if err := st.Consume(tb.Context(), traffic.Period{Start: start, End: now, Rows: rows}); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

// someClients are a few clients of both families, and other.
func someClients() []traffic.Client {
	var out []traffic.Client
	for _, s := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"} {
		out = append(out, traffic.ClientOf(netip.MustParseAddr(s)))
	}
	return append(out, traffic.Other)
}

// receiver is a test's HTTP endpoint: it keeps the rows of every body
// it takes, by table, time and address, as a receiver upserts them, and
// answers status while it is not 0.
type receiver struct {
	*httptest.Server
	status atomic.Int32 // answered instead of storing, when not 0

	mu     sync.Mutex
	bodies [][]byte
	rows   map[string]map[string]any // by table, timestamp and ip
	posts  int
}

func newReceiver(tb testing.TB) *receiver {
	tb.Helper()
	r := &receiver{rows: make(map[string]map[string]any)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if req.Header.Get("Authorization") != "Bearer "+testToken || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if s := r.status.Load(); s != 0 {
		// Echoes the header, as a careless receiver might.
		http.Error(w, "failing on purpose; you sent "+req.Header.Get("Authorization"), int(s))
		return
	}
	var b struct {
		Table string
		Rows  []map[string]any
	}
	if err := json.Unmarshal(body, &b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.bodies = append(r.bodies, body)
	for _, row := range b.Rows {
		key, _ := json.Marshal([]any{b.Table, row["timestamp"], row["ip"]})
		r.rows[string(key)] = row
	}
	w.WriteHeader(http.StatusNoContent)
}

// stored returns how many distinct rows the receiver holds, and the
// bodies it took.
func (r *receiver) stored() (int, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rows), append([][]byte(nil), r.bodies...)
}

// testConfig is a Config of a test: every table, small batches, a short
// timeout, logging to log.
func testConfig(url string, log *syncbuf.Buffer) Config {
	return Config{
		URL: url, Token: testToken, HostID: "test-host",
		Tables:    []store.Table{store.Minutes, store.Hours, store.Days},
		BatchRows: 50, Timeout: 2 * time.Second, MaxBackoff: 300 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(log, nil)),
	}
}

// newSyncer makes a Syncer of st for tb.
func newSyncer(tb testing.TB, st *store.Store, cfg Config) *Syncer {
	tb.Helper()
	s, err := New(st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// pendingRows counts the rows s has yet to send.
func pendingRows(tb testing.TB, s *Syncer) int {
	tb.Helper()
	n, err := s.Pending(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
