package pgsync

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/pgtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
)

// The central tables equal the local ones row by row after days of
// traffic written with late rows, rollups and retention, while the server
// is stopped, killed, paused past the timeout and slowed, the sync
// crashes between a central commit and its cursor, the daemon restarts,
// and a `sync -once` runs beside the daemon's sync.
func TestSyncExactThroughOutages(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := newHistory(t)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	r := run(newSyncer(t, h.st, cfg))
	defer func() { r.stop(t) }()

	crashed := false
	for step := 1; step <= 4*24; step++ {
		h.step(t)
		r.AfterFlush()
		switch step {
		case 10:
			server.Stop()
			r.waitFailing(t)
		case 16: // six hours of rows waited
			server.Start()
			r.waitCaughtUp(t)
		case 24:
			server.Kill()
			r.waitFailing(t)
			h.step(t)
			server.Start()
			r.waitCaughtUp(t)
		case 30:
			// Slower than the timeout: batches fail and are retried.
			server.Pause()
			r.waitFailing(t)
			server.Resume()
			r.waitCaughtUp(t)
		case 34:
			// Slow, within the timeout: no failure.
			failures := r.Stats().Failures
			server.Pause()
			h.step(t)
			r.AfterFlush()
			time.Sleep(cfg.Timeout / 3)
			server.Resume()
			r.waitCaughtUp(t)
			if got := r.Stats().Failures; got != failures {
				t.Errorf("%d failures while the server was slow within the timeout", got-failures)
			}
		case 40:
			// The daemon crashes between a central commit and the
			// save of its cursor, then starts again.
			r.stop(t)
			h.step(t)
			s := newSyncer(t, h.st, cfg)
			s.afterCommit = func() error {
				crashed = true
				return errors.New("crash")
			}
			if _, err := s.SyncOnce(t.Context()); err == nil || !crashed {
				t.Fatalf("SyncOnce with a crash after the commit = %v", err)
			}
			r = run(newSyncer(t, h.st, cfg))
		case 50:
			// The daemon restarts with a backlog, the server away.
			server.Stop()
			h.step(t)
			r.stop(t)
			h.open(t)
			r = run(newSyncer(t, h.st, cfg))
			r.waitFailing(t)
			h.step(t)
			server.Start()
			r.waitCaughtUp(t)
		case 60:
			// collector sync -once beside the daemon's sync.
			other := newSyncer(t, h.st, cfg)
			for range 3 {
				h.step(t)
				r.AfterFlush()
				if _, err := other.SyncOnce(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	r.waitCaughtUp(t)
	verify(t, r.Syncer)

	// The central side keeps what local retention deleted.
	local, err := h.st.Pending(t.Context(), store.Minutes, store.Mark{})
	if err != nil {
		t.Fatal(err)
	}
	if central := count(t, server, "fleet", store.Minutes); central <= local {
		t.Errorf("%d central minute rows, %d local; want the central side to keep the older ones", central, local)
	}

	logs := log.String()
	checkNoPassword(t, "the log", logs, server.Password())
	// One line as each outage starts and one as it ends, not a line
	// per retry: four outages, and the one the daemon stopped in, which
	// it may have seen start.
	starts, ends := strings.Count(logs, "cannot sync to PostgreSQL"), strings.Count(logs, "syncing to PostgreSQL again")
	if starts < 4 || starts > 5 || ends != 4 {
		t.Errorf("%d outage starts and %d ends logged; want 4 or 5, and 4:\n%s", starts, ends, logs)
	}
	if !strings.Contains(logs, "pending_rows=") {
		t.Errorf("no backlog in the log:\n%s", logs)
	}
}

// AfterFlush sends what a flush stored at once, not at the next
// Interval, which here is longer than the test may wait.
func TestAfterFlushSyncsNow(t *testing.T) {
	var log syncbuf.Buffer
	cfg := testConfig(pgtest.New(t).CreateDatabase("fleet"), "host-a", &log)
	cfg.Interval = time.Hour
	h := newHistory(t)
	r := run(newSyncer(t, h.st, cfg))
	defer func() { r.stop(t) }()
	r.waitCaughtUp(t) // the sync at the start
	for range 3 {
		h.step(t)
		r.AfterFlush()
		r.waitCaughtUp(t)
	}
	verify(t, r.Syncer)
}

// Two hosts syncing into one database share clients and times, and keep
// their rows apart.
func TestTwoHostsApart(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	var log syncbuf.Buffer
	a, b := newHistory(t), newHistory(t)
	sa := newSyncer(t, a.st, testConfig(url, "host-a", &log))
	sb := newSyncer(t, b.st, testConfig(url, "host-b", &log))
	for range 30 {
		a.step(t)
		b.step(t)
		b.step(t) // b's rows differ from a's
	}
	for _, s := range []*Syncer{sa, sb} {
		if _, err := s.SyncOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		verify(t, s)
	}
	for _, table := range tables {
		want := 0
		for _, st := range []*store.Store{a.st, b.st} {
			n, err := st.Pending(t.Context(), table, store.Mark{})
			if err != nil {
				t.Fatal(err)
			}
			want += n
		}
		if got := count(t, server, "fleet", table); got != want {
			t.Errorf("%s: %d central rows, want the hosts' %d", table, got, want)
		}
	}
	var hosts int
	if err := server.Conn("fleet").QueryRow(t.Context(), "SELECT count(*) FROM collector_hosts WHERE host IN ('host-a', 'host-b')").Scan(&hosts); err != nil || hosts != 2 {
		t.Errorf("collector_hosts has %d of the two hosts, %v", hosts, err)
	}
}

// collector sync -once sends what is pending, and nothing when run again.
func TestOnceTwice(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	cfg := testConfig(url, "host-a", &log)
	for i, wantSome := range []bool{true, false} {
		sent, err := Once(t.Context(), h.path, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := sent.Total() > 0; got != wantSome {
			t.Errorf("run %d sent %v, want some: %v", i+1, sent, wantSome)
		}
	}
	h.step(t)
	sent, err := Once(t.Context(), h.path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The hour's minute rows; the rollups of the hour before.
	if sent[store.Minutes] == 0 || sent[store.Hours] == 0 {
		t.Errorf("after a new hour, sent %v; want its minute rows and the last hour's rollup", sent)
	}
	verify(t, newSyncer(t, h.st, cfg))

	if _, err := Once(t.Context(), h.path+".missing", cfg); err == nil || !strings.Contains(err.Error(), "SQLITE_PATH") {
		t.Errorf("Once of a missing file = %v, want an error naming SQLITE_PATH", err)
	}
}

// Pointing a host at another database sends that one everything.
func TestNewDatabaseGetsEverything(t *testing.T) {
	server := pgtest.New(t)
	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	for _, db := range []string{"first", "second"} {
		s := newSyncer(t, h.st, testConfig(server.CreateDatabase(db), "host-a", &log))
		if _, err := s.SyncOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		verify(t, s)
	}
}

// A central schema newer than this collector's is refused with a line
// that says what to do.
func TestNewerSchemaRefused(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := newHistory(t)
	h.step(t)
	var log syncbuf.Buffer
	if _, err := Once(t.Context(), h.path, testConfig(url, "host-a", &log)); err != nil {
		t.Fatal(err)
	}
	server.Exec("fleet", "UPDATE collector_schema SET version = 99")
	_, err := Once(t.Context(), h.path, testConfig(url, "host-a", &log))
	if !errors.Is(err, errNewerSchema) || !strings.Contains(err.Error(), fmt.Sprintf("central schema version 99 is newer than this collector's (%d): upgrade the collector", schemaVersion)) {
		t.Errorf("sync to a newer schema = %v", err)
	}
}

// The central schema is made once when hosts start together, and a
// second connection finds it made.
func TestSchemaCreatedOnce(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	errs := make(chan error)
	for i := range 4 {
		go func() {
			h := newHistory(t)
			h.step(t)
			var log syncbuf.Buffer
			_, err := Once(t.Context(), h.path, testConfig(url, fmt.Sprintf("host-%d", i), &log))
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	var version int
	if err := server.Conn("fleet").QueryRow(t.Context(), "SELECT version FROM collector_schema").Scan(&version); err != nil || version != schemaVersion {
		t.Errorf("collector_schema version %d, %v; want %d", version, err, schemaVersion)
	}
}

// The password never shows in errors or the journal, whatever fails.
func TestPasswordNeverShown(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	password := server.Password()
	wrong := "Wr0ng-p@ss/w:rd"
	h := newHistory(t)
	h.step(t)
	for _, tt := range []struct {
		name, url, hide string
	}{
		{"wrong password", withPassword(t, url, wrong), wrong},
		{"no server", strings.Replace(url, fmt.Sprint(server.Port()), "1", 1), password},
		{"no database", strings.Replace(url, "/fleet", "/missing", 1), password},
		{"unparsable", strings.Replace(url, "sslmode=disable", "sslmode=bogus", 1), password},
		{"unparsable URL", "postgres://collector:" + password + "@[::1/fleet", password},
		{"key=value", fmt.Sprintf("host=127.0.0.1 port=%d user=nobody password=%s dbname=fleet sslmode=disable", server.Port(), password), password},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var log syncbuf.Buffer
			cfg := testConfig(tt.url, "host-a", &log)
			_, err := Once(t.Context(), h.path, cfg)
			if err == nil {
				t.Fatal("sync succeeded")
			}
			checkNoPassword(t, "the error", err.Error(), tt.hide)
			if s, err := New(h.st, cfg); err == nil {
				r := run(s)
				r.waitFailing(t)
				r.stop(t)
			}
			checkNoPassword(t, "the log", log.String(), tt.hide)
		})
	}
}

// withPassword returns rawURL with its password replaced.
func withPassword(t *testing.T, rawURL, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

func TestSecretMasks(t *testing.T) {
	const password = "p@ss w/rd:%"
	sec := newSecret(password)
	for _, spelled := range []string{password, url.QueryEscape(password), url.PathEscape(password), url.UserPassword("u", password).String()} {
		err := sec.wrap(fmt.Errorf("cannot parse `%s`: %w", spelled, errNewerSchema))
		checkNoPassword(t, "the error", err.Error(), password)
		if strings.Contains(err.Error(), spelled) || !strings.Contains(err.Error(), mask) {
			t.Errorf("%q masked as %q", spelled, err)
		}
		if !errors.Is(err, errNewerSchema) {
			t.Errorf("the masked error %v no longer wraps the original", err)
		}
	}
	if newSecret("").wrap(nil) != nil || secret(nil).wrap(errNewerSchema) != errNewerSchema {
		t.Error("no password changes an error")
	}
}

// Verify names the rows that differ, and only those.
func TestVerifyFindsDifferences(t *testing.T) {
	server := pgtest.New(t)
	url := server.CreateDatabase("fleet")
	h := steppedHistory(t, 30)
	var log syncbuf.Buffer
	s := newSyncer(t, h.st, testConfig(url, "host-a", &log))
	if _, err := s.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	verify(t, s)
	server.Exec("fleet", `UPDATE traffic_hourly SET quic_up = quic_up + 1 WHERE timestamp = (SELECT max(timestamp) FROM traffic_hourly) AND ip = 'other';
DELETE FROM traffic_daily WHERE timestamp = '2025-03-01T00:00:00Z' AND ip = '192.0.2.1';
INSERT INTO traffic_minute (host, timestamp, ip) VALUES ('host-a', now(), '192.0.2.99');
INSERT INTO traffic_minute (host, timestamp, ip) VALUES ('host-b', now(), '192.0.2.98')`)
	err := s.Verify(t.Context())
	if err == nil {
		t.Fatal("Verify found no difference")
	}
	for _, want := range []string{"3 rows of host host-a differ", "traffic_hourly other at", "traffic_daily 192.0.2.1 at 2025-03-01T00:00:00Z: missing centrally", "traffic_minute 192.0.2.99 at"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Verify = %v\nwant it to name %q", err, want)
		}
	}
}
