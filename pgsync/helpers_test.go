package pgsync

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// day0 is a UTC midnight; histories start there.
var day0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// keep is the local retention of test stores: short, so that a few days
// of history see minute and hourly rows deleted.
var keep = store.Retention{Minutes: 24 * time.Hour, Hourly: 3 * 24 * time.Hour}

// history writes traffic into a real store as the daemon does, a period
// at a time with its clock at the period's end, so that rollups and
// retention run as they would: an hour of minute rows per step, of a few
// clients, and now and then rows that come late, for a rolled-up hour or
// for a day whose minute rows retention has deleted.
type history struct {
	st      *store.Store
	path    string
	now     time.Time
	steps   int
	clients []traffic.Client
}

// newHistory opens a store in a new file for tb. Clients of one seed are
// the same addresses in every history, so two hosts share clients.
func newHistory(tb testing.TB) *history {
	tb.Helper()
	h := &history{path: filepath.Join(tb.TempDir(), "collector.db"), now: day0}
	for _, s := range []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"} {
		h.clients = append(h.clients, traffic.ClientOf(netip.MustParseAddr(s)))
	}
	h.clients = append(h.clients, traffic.Other)
	h.open(tb)
	return h
}

// open opens the history's file, as a restarted daemon would, closing
// the store that had it open.
func (h *history) open(tb testing.TB) {
	tb.Helper()
	if h.st != nil {
		h.st.Close()
	}
	st, err := store.Open(h.path, store.Options{
		Log:       slog.New(slog.DiscardHandler),
		Retention: keep,
		Now:       func() time.Time { return h.now },
		LockWait:  5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	h.st = st
}

// steppedHistory is a new history with its first hours written.
func steppedHistory(tb testing.TB, hours int) *history {
	tb.Helper()
	h := newHistory(tb)
	for range hours {
		h.step(tb)
	}
	return h
}

// step writes the next hour.
func (h *history) step(tb testing.TB) {
	tb.Helper()
	h.steps++
	start := h.now
	h.now = h.now.Add(time.Hour)
	var rows []traffic.Row
	for m := start; m.Before(h.now); m = m.Add(time.Minute) {
		for i, c := range h.clients {
			// Each client has its own rhythm, with gaps.
			if (m.Unix()/60)%int64(i+2) != 0 {
				rows = append(rows, traffic.Row{Start: m, Client: c, Traffic: dbtest.Seeded(uint64(h.steps*1000 + m.Minute()*10 + i))})
			}
		}
	}
	if h.steps%5 == 0 {
		// A drain that failed for a while: its rows come late, into an
		// hour already rolled up.
		rows = append(rows, traffic.Row{Start: start.Add(-3*time.Hour + 7*time.Minute), Client: h.clients[0], Traffic: dbtest.Seeded(uint64(h.steps))})
	}
	if h.steps%11 == 0 {
		// The clock set back: rows for a day whose minute rows are gone.
		rows = append(rows, traffic.Row{Start: start.Add(-40 * time.Hour), Client: h.clients[2], Traffic: dbtest.Seeded(uint64(h.steps))})
	}
	if err := h.st.Consume(tb.Context(), traffic.Period{Start: start, End: h.now, Rows: rows}); err != nil {
		tb.Fatal(err)
	}
}

// testConfig is a Config for a test: quick to retry and to give up on a
// server, small batches, logging to log.
func testConfig(url, host string, log *syncbuf.Buffer) Config {
	return Config{
		URL:        url,
		HostID:     host,
		Interval:   100 * time.Millisecond,
		BatchRows:  300,
		Timeout:    2 * time.Second,
		MaxBackoff: 300 * time.Millisecond,
		Log:        slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
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

// running is a Syncer's Run in a goroutine.
type running struct {
	*Syncer
	cancel context.CancelFunc
	done   chan error
}

// run starts s.Run; stop ends it.
func run(s *Syncer) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Syncer: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	return r
}

func (r *running) stop(tb testing.TB) {
	tb.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			tb.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		tb.Fatal("Run did not return after its context was done")
	}
}

// waitCaughtUp waits until r has sent everything written so far.
func (r *running) waitCaughtUp(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := r.Pending(tb.Context())
		if err != nil {
			tb.Fatal(err)
		}
		if n == 0 && !r.Stats().Failing {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d rows still pending after 30s: %+v", n, r.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFailing waits until an attempt of r has failed.
func (r *running) waitFailing(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !r.Stats().Failing {
		if time.Now().After(deadline) {
			tb.Fatalf("no attempt failed within 30s: %+v", r.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verify fails tb unless the central rows of s's host equal the local
// ones.
func verify(tb testing.TB, s *Syncer) {
	tb.Helper()
	if err := s.Verify(tb.Context()); err != nil {
		tb.Error(err)
	}
}

// count returns the rows of a central table, of every host.
func count(tb testing.TB, server *pgtest.Server, db string, t store.Table) int {
	tb.Helper()
	var n int
	if err := server.Conn(db).QueryRow(tb.Context(), "SELECT count(*) FROM "+t.String()).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// checkNoPassword fails tb if text holds password.
func checkNoPassword(tb testing.TB, what, text, password string) {
	tb.Helper()
	if strings.Contains(text, password) {
		tb.Errorf("%s shows the password:\n%s", what, text)
	}
}
