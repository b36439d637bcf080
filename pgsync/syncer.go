package pgsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/internal/syncloop"
	"github.com/back2basic/collector/store"
)

// Defaults of Config.
const (
	DefaultBatchRows = 5000
	DefaultTimeout   = time.Minute
)

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
	// sooner; default syncloop.DefaultInterval.
	Interval time.Duration
	// BatchRows is how many rows one central transaction carries;
	// default DefaultBatchRows.
	BatchRows int
	// Timeout bounds connecting and each batch, so that a server that
	// stopped answering is given up on; default DefaultTimeout.
	Timeout time.Duration
	// MaxBackoff is the longest wait between attempts while they fail;
	// default syncloop.DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Tables are the local tables sent (SYNC_POSTGRES_TABLES); default
	// all three.
	Tables []store.Table
	// Partitions says whether the collector makes and drops the
	// partitions of the central minute and hourly tables, or only uses
	// those the operator makes (SYNC_POSTGRES_PARTITIONS).
	Partitions PartitionMode
	// Retention is how long the central side keeps minute and hourly
	// rows, whole days (SYNC_POSTGRES_RETENTION_*); zero keeps them
	// forever. Partitions wholly older than the longest any host sets
	// are dropped.
	Retention store.Retention
	// Log hears about the sync starting, and failing and recovering
	// once per outage; default slog.Default().
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = syncloop.DefaultInterval
	}
	if c.BatchRows <= 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if len(c.Tables) == 0 {
		c.Tables = tables
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
// Its Loop runs the syncs: Run, AfterFlush, SyncOnce, Stats.
type Syncer struct {
	*syncloop.Loop
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
	// tables are the local tables sent, in the order of tables.
	tables []store.Table

	conn *pgx.Conn // nil while not connected; used by one sync at a time
	// known holds the partitions (partitionName) this connection made
	// or found, and maintained when it last made and dropped them.
	known      map[string]bool
	maintained time.Time
	// now is the clock partitions are made and dropped by; tests set it.
	now func() time.Time

	// afterCommit, when set, runs between a batch's central commit and
	// the save of the local cursor; an error stops the batch there, as
	// a crash would. Tests set it.
	afterCommit func() error
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
	// Days and months are UTC days and months, as the local tables'.
	conf.RuntimeParams["timezone"] = "UTC"
	s := &Syncer{store: st, cfg: cfg, conf: conf, now: time.Now}
	for _, t := range tables {
		if slices.Contains(cfg.Tables, t) {
			s.tables = append(s.tables, t)
		}
	}
	s.secret = newSecret(conf.Password)
	if s.host, s.hostFrom, err = HostID(cfg.HostID); err != nil {
		return nil, err
	}
	s.hostname, _ = os.Hostname()
	s.target = s.host + " -> " + s.servers() + "/" + s.conf.Database
	s.Loop = syncloop.New(syncloop.Config{
		Target: "postgres", Name: "PostgreSQL", Host: s.host,
		Send: s.sync, Store: st, Cursor: s.target, Tables: s.tables,
		Interval: cfg.Interval, MaxBackoff: cfg.MaxBackoff, Log: cfg.Log,
	})
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

// Run syncs as syncloop.Loop.Run does, until ctx is done, and closes
// the connection.
func (s *Syncer) Run(ctx context.Context) error {
	defer s.disconnect()
	s.cfg.Log.Info("syncing to PostgreSQL", "to", s.where(), "host", s.host, "host_from", s.hostFrom, "interval", s.cfg.Interval)
	return s.Loop.Run(ctx)
}

// Sent counts the rows a sync sent, per local table.
type Sent = syncloop.Sent

// sync connects when not connected, then sends every table's rows
// written since its cursor, batch after batch, until none is left. A
// failure drops the connection, which may be broken.
func (s *Syncer) sync(ctx context.Context) (Sent, error) {
	var sent Sent
	err := s.sendAll(ctx, &sent)
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
	if err := s.maintainPartitions(ctx); err != nil {
		return err
	}
	for _, t := range s.tables {
		for {
			n, done, err := s.sendBatch(ctx, t)
			sent[t] += n
			if need := (*needPartitions)(nil); errors.As(err, &need) {
				if err = s.makePartitions(ctx, need); err == nil {
					continue // the batch again, into its new partitions
				}
			}
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	return s.sendHostd(ctx)
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
	s.conn, s.known, s.maintained = conn, make(map[string]bool), time.Time{}
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

// Stats is how the sync goes: what metrics report.
type Stats = syncloop.Stats

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
