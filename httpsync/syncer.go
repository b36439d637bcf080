package httpsync

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/back2basic/collector/internal/syncloop"
	"github.com/back2basic/collector/pgsync"
	"github.com/back2basic/collector/store"
)

// Defaults of Config.
const (
	DefaultBatchRows  = 5000
	DefaultBatchBytes = 1 << 20
	DefaultTimeout    = 30 * time.Second
)

// DefaultTables are the tables sent unless Config.Tables says otherwise:
// the rollups, a row per client and hour or day. Minute rows are many
// (a row per client and minute) and few receivers want them.
var DefaultTables = []store.Table{store.Hours, store.Days}

// maxAnswerBytes bounds what is read of an answer: a receiver owes no
// more than a status, and what it says beside it is quoted in errors.
const maxAnswerBytes = 64 << 10

// quotedAnswer bounds how much of an answer an error quotes.
const quotedAnswer = 200

// Config tunes a Syncer; the zero value of each field but URL gives its
// default.
type Config struct {
	// URL is the endpoint every batch is POSTed to (SYNC_HTTP_URL):
	// https, or http to a loopback address (ParseURL).
	URL string
	// Token is sent as Authorization: Bearer (SYNC_HTTP_TOKEN); empty
	// sends none. It is never logged.
	Token string
	// Tables are the local tables sent (SYNC_HTTP_TABLES); default
	// DefaultTables.
	Tables []store.Table
	// HostID names this host's rows (HOST_ID), as in package pgsync.
	HostID string
	// Interval is the time between syncs when no flush asks for one
	// sooner; default syncloop.DefaultInterval.
	Interval time.Duration
	// BatchRows and BatchBytes bound one POST's rows and body; defaults
	// DefaultBatchRows and DefaultBatchBytes.
	BatchRows, BatchBytes int
	// Timeout bounds each request, answer included, so that a receiver
	// that stopped answering is given up on (SYNC_HTTP_TIMEOUT); default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxBackoff is the longest wait between attempts while they fail;
	// default syncloop.DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Log hears about the sync starting, and failing and recovering
	// once per outage; default slog.Default().
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Tables == nil {
		c.Tables = DefaultTables
	}
	c.Interval = cmp.Or(c.Interval, syncloop.DefaultInterval)
	c.BatchRows = cmp.Or(c.BatchRows, DefaultBatchRows)
	c.BatchBytes = cmp.Or(c.BatchBytes, DefaultBatchBytes)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.Log = cmp.Or(c.Log, slog.Default())
	return c
}

// Syncer POSTs the traffic rows of a local store to an HTTP endpoint,
// every row as last written, once it is stored locally. Its Loop runs
// the syncs: Run, AfterFlush, SyncOnce, Stats.
type Syncer struct {
	*syncloop.Loop
	store *store.Store
	cfg   Config
	url   *url.URL
	// where names the endpoint in logs and errors, without its query.
	where          string
	host, hostFrom string
	// target names the endpoint and host in the local cursors, so that
	// pointing the sync elsewhere, or changing the host's id, sends
	// every row again.
	target string
	// batchRows is how many rows fit a batch, in rows and in bytes.
	batchRows int
	client    *http.Client
}

// New returns a Syncer of st as cfg says. It checks the settings but
// sends nothing: Run and SyncOnce do.
func New(st *store.Store, cfg Config) (*Syncer, error) {
	cfg = cfg.withDefaults()
	u, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("SYNC_HTTP_URL: %w", err)
	}
	s := &Syncer{store: st, cfg: cfg, url: u, where: where(u)}
	if s.host, s.hostFrom, err = pgsync.HostID(cfg.HostID); err != nil {
		return nil, err
	}
	if s.batchRows = rowsPerBatch(s.host, cfg.BatchRows, cfg.BatchBytes); s.batchRows == 0 {
		return nil, fmt.Errorf("a batch of %d bytes holds no row; accepted: at least %d bytes", cfg.BatchBytes, envelopeBytes(s.host)+maxRowBytes())
	}
	s.target = "http " + s.host + " -> " + s.where
	transport := http.DefaultTransport.(*http.Transport).Clone()
	s.client = &http.Client{
		Transport: transport,
		// A redirect is an error (post): the POST is not sent again
		// elsewhere, and the token not with it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.Loop = syncloop.New(syncloop.Config{
		Target: "http", Name: "the HTTP endpoint", Host: s.host,
		Send: s.sync, Store: st, Cursor: s.target, Tables: s.cfg.Tables,
		Interval: cfg.Interval, MaxBackoff: cfg.MaxBackoff, Log: cfg.Log,
	})
	return s, nil
}

// String names the sync in the journal.
func (s *Syncer) String() string { return "the HTTP sync" }

// Run syncs as syncloop.Loop.Run does, until ctx is done.
func (s *Syncer) Run(ctx context.Context) error {
	s.cfg.Log.Info("syncing to the HTTP endpoint", "to", s.where, "host", s.host, "host_from", s.hostFrom,
		"tables", tableNames(s.cfg.Tables), "interval", s.cfg.Interval)
	return s.Loop.Run(ctx)
}

// Close drops the idle connections once Run has returned.
func (s *Syncer) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// sync sends every table's rows written since its cursor, batch after
// batch, until none is left.
func (s *Syncer) sync(ctx context.Context) (syncloop.Sent, error) {
	var sent syncloop.Sent
	for _, t := range s.cfg.Tables {
		for {
			n, done, err := s.sendBatch(ctx, t)
			sent[t] += n
			if err != nil {
				return sent, err
			}
			if done {
				break
			}
		}
	}
	return sent, nil
}

// sendBatch POSTs the next batch of table t's rows written since its
// cursor, and moves the cursor past them once the receiver answered 2xx.
// It returns how many rows it sent and whether none is left.
func (s *Syncer) sendBatch(ctx context.Context, t store.Table) (sent int, done bool, err error) {
	from, err := s.store.SyncCursor(ctx, s.target, t)
	if err != nil {
		return 0, false, err
	}
	b, err := s.store.Changes(ctx, t, from, s.batchRows)
	if err != nil {
		return 0, false, err
	}
	if len(b.Rows) > 0 {
		if err := s.post(ctx, body(s.host, t, b.Rows)); err != nil {
			return 0, false, fmt.Errorf("send %d rows of %s: %w", len(b.Rows), t, err)
		}
	}
	if b.Next != from {
		if err := s.store.SaveSyncCursor(ctx, s.target, t, from, b.Next); err != nil {
			return len(b.Rows), false, err
		}
	}
	return len(b.Rows), b.Done, nil
}

// post sends one batch and returns nil only when the receiver answered
// 2xx.
func (s *Syncer) post(ctx context.Context, body []byte) error {
	if len(body) > s.cfg.BatchBytes {
		// rowsPerBatch's bound failed: an address longer than any.
		return fmt.Errorf("a batch of %d bytes, over the bound of %d", len(body), s.cfg.BatchBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post to %s: %w", s.where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	s.authorize(req)
	answer, status, location, err := s.do(req)
	if err != nil {
		return err
	}
	switch {
	case status/100 == 2:
		return nil
	case status/100 == 3:
		return fmt.Errorf("%s answered %d, a redirect to %s, which is not followed: set SYNC_HTTP_URL to where it points, if that is right", s.where, status, location)
	}
	return fmt.Errorf("%s answered %d: %s", s.where, status, s.quote(answer))
}

// authorize adds the token, if any, to req.
func (s *Syncer) authorize(req *http.Request) {
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
}

// do sends req and returns its answer's status, its body up to
// maxAnswerBytes and, quoted for an error, the start of it and where a
// redirect points.
func (s *Syncer) do(req *http.Request) (answer string, status int, location string, err error) {
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the whole URL
		}
		return "", 0, "", fmt.Errorf("%s %s: %w", strings.ToLower(req.Method), s.where, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil && resp.StatusCode/100 == 2 {
		return "", 0, "", fmt.Errorf("read the answer of %s: %w", s.where, err)
	}
	if loc, err := resp.Location(); err == nil {
		location = where(loc)
	}
	return string(b), resp.StatusCode, s.quote(location), nil
}

// quote returns text a receiver answered fit for an error: its first
// line, bounded, with the token masked should the receiver echo it.
func (s *Syncer) quote(text string) string {
	text, _, _ = strings.Cut(strings.TrimSpace(text), "\n")
	if s.cfg.Token != "" {
		text = strings.ReplaceAll(text, s.cfg.Token, "xxxxx")
	}
	text = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, text)
	if len(text) > quotedAnswer {
		text = text[:quotedAnswer] + "..."
	}
	return text
}

// tableNames spells tables for the journal.
func tableNames(tables []store.Table) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.String()
	}
	return strings.Join(names, ",")
}

// Once sends every row of the SQLite file at sqlitePath that the endpoint
// lacks and returns what it sent, for `collector sync -once`.
func Once(ctx context.Context, sqlitePath string, cfg Config) (syncloop.Sent, error) {
	cfg = cfg.withDefaults()
	if _, err := os.Stat(sqlitePath); err != nil {
		return syncloop.Sent{}, fmt.Errorf("open %s: %w (is SQLITE_PATH right, and has the daemon run?)", sqlitePath, err)
	}
	st, err := store.Open(sqlitePath, store.Options{Log: cfg.Log})
	if err != nil {
		return syncloop.Sent{}, err
	}
	defer st.Close()
	s, err := New(st, cfg)
	if err != nil {
		return syncloop.Sent{}, err
	}
	defer s.Close()
	sent, err := s.SyncOnce(ctx)
	if err != nil {
		return sent, fmt.Errorf("sync %s to %s: %w", sqlitePath, s.where, err)
	}
	cfg.Log.Info("synced to the HTTP endpoint", "to", s.where, "host", s.host, "host_from", s.hostFrom,
		"minute_rows", sent[store.Minutes], "hourly_rows", sent[store.Hours], "daily_rows", sent[store.Days])
	return sent, nil
}
