package pgsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/store"
)

// Defaults of Config.
const (
	DefaultInterval   = time.Minute
	DefaultBatchRows  = 5000
	DefaultTimeout    = time.Minute
	DefaultMaxBackoff = 5 * time.Minute
)

// minBackoff is the wait after a first failure; it doubles with each
// failure after, up to Config.MaxBackoff.
const minBackoff = time.Second

// Config tunes a Syncer; the zero value of each field but URL gives its
// default.
type Config struct {
	// URL is the PostgreSQL connection string (SYNC_POSTGRES_URL), a
	// postgres:// URL or key=value pairs as libpq takes them; the
	// PG* environment variables and ~/.pgpass fill in what it leaves out.
	URL string
	// HostID keeps this host's rows apart from the other hosts' (HOST_ID);
	// empty takes the machine id, else the host name.
	HostID string
	// Interval is the time between syncs when no flush asks for one
	// sooner; default DefaultInterval.
	Interval time.Duration
	// BatchRows is how many rows one central transaction carries;
	// default DefaultBatchRows.
	BatchRows int
	// Timeout bounds connecting and each batch, so that a server that
	// stopped answering is given up on; default DefaultTimeout.
	Timeout time.Duration
	// MaxBackoff is the longest wait between attempts while they fail;
	// default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Log hears about the sync starting, and failing and recovering
	// once per outage; default slog.Default().
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.BatchRows <= 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Syncer copies the traffic rows of a local store into the central
// tables of a PostgreSQL database, under this host's id: every row as
// last written, once it is stored locally. A row sent twice (after a
// crash between the central commit and the local cursor's) lands once,
// since the central rows are set to the local values, never added to.
type Syncer struct {
	store  *store.Store
	cfg    Config
	conf   *pgx.ConnConfig
	secret secret
	// host names this host's rows; hostFrom says where it came from, and
	// hostname is the host name, stored beside it for people.
	host, hostFrom, hostname string
	// target names the central database and host in the local cursors,
	// so that pointing the sync at another database, or changing the
	// host's id, sends every row again.
	target string
	poke   chan struct{}

	conn   *pgx.Conn // nil while not connected; used by one sync at a time
	outage outage.Outage

	// afterCommit, when set, runs between a batch's central commit and
	// the save of the local cursor; an error stops the batch there, as
	// a crash would. Tests set it.
	afterCommit func() error

	mu    sync.Mutex
	stats Stats
	// caughtUp is when the sync last had nothing left to send, or when
	// the Syncer was made.
	caughtUp time.Time
}

// New returns a Syncer of st as cfg says. It checks the settings but does
// not connect: Run and SyncOnce do.
func New(st *store.Store, cfg Config) (*Syncer, error) {
	cfg = cfg.withDefaults()
	if strings.TrimSpace(cfg.URL) == "" {
		return nil, errors.New("SYNC_POSTGRES_URL is empty; accepted: postgres://user:password@host:port/database")
	}
	conf, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, errUnparsable
	}
	if conf.RuntimeParams["application_name"] == "" {
		// Names the connection in pg_stat_activity.
		conf.RuntimeParams["application_name"] = "collector"
	}
	s := &Syncer{store: st, cfg: cfg, conf: conf, poke: make(chan struct{}, 1), caughtUp: time.Now()}
	s.secret = newSecret(conf.Password)
	if s.host, s.hostFrom, err = hostID(cfg.HostID); err != nil {
		return nil, err
	}
	s.hostname, _ = os.Hostname()
	s.target = s.host + " -> " + s.servers() + "/" + s.conf.Database
	s.stats.Host = s.host
	s.outage = outage.Outage{
		Start: "cannot sync to PostgreSQL; rows wait in the local database, retrying with backoff",
		End:   "syncing to PostgreSQL again",
	}
	return s, nil
}

// where names the central database without the password:
// user@host:port/database.
func (s *Syncer) where() string {
	return fmt.Sprintf("%s@%s/%s", s.conf.User, s.servers(), s.conf.Database)
}

// servers lists the servers of the connection string, host:port, the
// first one first.
func (s *Syncer) servers() string {
	hosts := []string{net.JoinHostPort(s.conf.Host, strconv.Itoa(int(s.conf.Port)))}
	for _, fb := range s.conf.Fallbacks {
		hosts = append(hosts, net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))))
	}
	return strings.Join(hosts, ",")
}

// String names the sync in the journal.
func (s *Syncer) String() string { return "the PostgreSQL sync" }

// AfterFlush asks Run for a sync now that a flush has stored a period
// in the local database, without waiting for it: the sync is never in the
// way of counting or of the local database. The daemon calls it after the
// store took each period (agg.Then).
func (s *Syncer) AfterFlush() {
	select {
	case s.poke <- struct{}{}:
	default: // one is due already
	}
}

// Run syncs right away, then after every flush (AfterFlush) and every
// Interval, until ctx is done. Failures are logged once as they start,
// with the rows waiting, and once as they end, and retried with
// exponential backoff; meanwhile the rows wait in the local database,
// bounded by its retention. It returns nil when ctx is done.
func (s *Syncer) Run(ctx context.Context) error {
	defer s.disconnect()
	s.cfg.Log.Info("syncing to PostgreSQL", "to", s.where(), "host", s.host, "host_from", s.hostFrom, "interval", s.cfg.Interval)
	failures := 0
	for {
		wait, poke := s.cfg.Interval, s.poke
		if err := s.attempt(ctx); err != nil {
			failures++
			wait, poke = backoff(failures, s.cfg.MaxBackoff), nil
		} else {
			failures = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			// The daemon's last flush came just before: its rows get a
			// bounded chance to go out now rather than at the next start.
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), lastSyncTimeout)
			defer cancel()
			_ = s.attempt(last) // a failure is logged; the rows wait for the next start
			return nil
		case <-timer.C:
		case <-poke:
			timer.Stop()
		}
	}
}

// lastSyncTimeout bounds the sync at shutdown, within systemd's stop
// timeout.
const lastSyncTimeout = 5 * time.Second

// backoff returns the wait after the nth failure in a row: doubling from
// minBackoff up to most, each drawn from its upper half, so that hosts
// that lost the server together do not all come back at once.
func backoff(n int, most time.Duration) time.Duration {
	d := most
	if n < 32 {
		d = min(minBackoff<<(n-1), most)
	}
	return d/2 + rand.N(d/2+1)
}

// attempt is one sync of Run, with what it logs and counts.
func (s *Syncer) attempt(ctx context.Context) error {
	sent, err := s.sync(ctx)
	if ctx.Err() != nil {
		return err // stopped, not failed
	}
	now := time.Now()
	var attrs []any
	if err != nil {
		pending, lag := s.failed(ctx, now)
		attrs = []any{"pending_rows", pending, "lag", lag.Round(time.Second)}
	} else {
		attrs = []any{"sent_rows", sent.Total()}
	}
	s.outage.Update(ctx, s.cfg.Log, now, err, attrs...)
	return err
}

// Sent counts the rows a sync sent, per local table.
type Sent [store.Days + 1]int

// Total is the rows sent of every table.
func (s Sent) Total() int { return s[store.Minutes] + s[store.Hours] + s[store.Days] }

// SyncOnce sends every row the central tables lack, as Run does once,
// without retrying, and returns what it sent.
func (s *Syncer) SyncOnce(ctx context.Context) (Sent, error) {
	sent, err := s.sync(ctx)
	if err != nil {
		s.failed(ctx, time.Now())
	}
	return sent, err
}

// sync connects when not connected, then sends every table's rows
// written since its cursor, batch after batch, until none is left. A
// failure drops the connection, which may be broken.
func (s *Syncer) sync(ctx context.Context) (Sent, error) {
	var sent Sent
	err := s.sendAll(ctx, &sent)
	s.mu.Lock()
	s.stats.Sent += uint64(sent.Total())
	if err == nil {
		now := time.Now()
		s.stats.Pending, s.stats.Failing, s.stats.LastSuccess, s.caughtUp = 0, false, now, now
	}
	s.mu.Unlock()
	if err != nil {
		s.disconnect()
	}
	return sent, s.secret.wrap(err)
}

func (s *Syncer) sendAll(ctx context.Context, sent *Sent) error {
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return fmt.Errorf("connect to %s: %w", s.where(), err)
		}
	}
	if err := s.checkCentral(ctx); err != nil {
		return err
	}
	for _, t := range tables {
		for {
			n, done, err := s.sendBatch(ctx, t)
			sent[t] += n
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	return nil
}

// failed records a failed sync and returns how many rows wait and how
// long they have, for the journal.
func (s *Syncer) failed(ctx context.Context, now time.Time) (pending int, lag time.Duration) {
	pending, err := s.pending(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Failures++
	s.stats.Failing = true
	if err == nil {
		s.stats.Pending = pending
	}
	return s.stats.Pending, now.Sub(s.caughtUp)
}

// pending counts the rows waiting to be sent.
func (s *Syncer) pending(ctx context.Context) (int, error) {
	total := 0
	for _, t := range tables {
		from, err := s.store.SyncCursor(ctx, s.target, t)
		if err != nil {
			return 0, err
		}
		n, err := s.store.Pending(ctx, t, from)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func (s *Syncer) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.conf)
	if err != nil {
		return err
	}
	if err := prepareSchema(ctx, conn); err != nil {
		conn.Close(context.Background())
		return err
	}
	s.conn = conn
	return nil
}

func (s *Syncer) disconnect() {
	if s.conn != nil {
		// A broken connection is closed without waiting for the
		// server.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.conn.Close(ctx)
		s.conn = nil
	}
}

// Close closes the connection, if any, once Run has returned.
func (s *Syncer) Close() error {
	s.disconnect()
	return nil
}

// Stats is how the sync goes: what metrics report, and what the journal
// says once per outage.
type Stats struct {
	// Host is the id this host's rows are stored under.
	Host string
	// Pending counts the rows waiting to be sent, as of the last
	// attempt: 0 once one sent everything, counted when one failed.
	Pending int
	// Lag is how long rows have waited to be sent: the time since the
	// sync last had nothing left to send, or since the Syncer was made;
	// 0 while the last attempt sent everything.
	Lag time.Duration
	// Sent counts the rows sent since the Syncer was made; a batch sent
	// again after a failure counts again.
	Sent uint64
	// Failures counts the attempts that failed; Failing reports whether
	// the last one did.
	Failures uint64
	Failing  bool
	// LastSuccess is when an attempt last sent everything; zero before
	// the first.
	LastSuccess time.Time
}

// Stats returns how the sync goes now. It does not wait for a sync in
// progress.
func (s *Syncer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if st.Failing || st.Pending > 0 {
		st.Lag = time.Since(s.caughtUp)
	}
	return st
}

// Once sends every row of the SQLite file at sqlitePath that the central
// tables lack and returns what it sent, for `collector sync -once`: a
// first backfill, or a script. It can run beside the daemon's own sync.
func Once(ctx context.Context, sqlitePath string, cfg Config) (Sent, error) {
	cfg = cfg.withDefaults()
	// Open would create a missing file: a wrong path would sync nothing
	// and say nothing.
	if _, err := os.Stat(sqlitePath); err != nil {
		return Sent{}, fmt.Errorf("open %s: %w (is SQLITE_PATH right, and has the daemon run?)", sqlitePath, err)
	}
	st, err := store.Open(sqlitePath, store.Options{Log: cfg.Log})
	if err != nil {
		return Sent{}, err
	}
	defer st.Close()
	s, err := New(st, cfg)
	if err != nil {
		return Sent{}, err
	}
	defer s.Close()
	sent, err := s.SyncOnce(ctx)
	if err != nil {
		return sent, fmt.Errorf("sync %s to %s: %w", sqlitePath, s.where(), err)
	}
	cfg.Log.Info("synced to PostgreSQL", "to", s.where(), "host", s.host, "host_from", s.hostFrom,
		"minute_rows", sent[store.Minutes], "hourly_rows", sent[store.Hours], "daily_rows", sent[store.Days])
	return sent, nil
}
