package pgsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// The central side keeps rows as long as the host that keeps them
// longest asks: each host records in collector_retention, per table it
// sends, the days its SYNC_POSTGRES_RETENTION_* setting keeps (0:
// forever), and a partition is dropped only once it is wholly older than
// the longest of them. A host set to keep rows for a short time thus
// never drops rows another host still keeps; a host that leaves the
// fleet for good is forgotten by deleting its rows there.

// partitionedTables are the central tables partitioned by day.
var partitionedTables = []store.Table{store.Minutes, store.Hours}

// maintainEvery is how often a collector that manages partitions makes
// the coming days' and drops those past retention: a partition is a day.
const maintainEvery = time.Hour

// keepDays is how many days the central side keeps t's rows by this
// host's settings, 0 for ever.
func (c Config) keepDays(t store.Table) int {
	keep := c.Retention.Minutes
	if t == store.Hours {
		keep = c.Retention.Hourly
	}
	return int(keep / (24 * time.Hour))
}

// maintainPartitions, when the collector manages partitions and it is
// due, makes the partitions of today and the next partitionsAhead days
// of each partitioned table the host sends, and drops those wholly past
// the central retention.
func (s *Syncer) maintainPartitions(ctx context.Context) error {
	now := s.now()
	if s.cfg.Partitions == UsePartitions || now.Sub(s.maintained) < maintainEvery {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	today := dayOf(now)
	for _, t := range s.tables {
		if !isPartitioned(t) {
			continue
		}
		if _, err := s.conn.Exec(ctx, `INSERT INTO collector_retention (host, tbl, keep_days) VALUES ($1, $2, $3)
ON CONFLICT (host, tbl) DO UPDATE SET keep_days = EXCLUDED.keep_days`, s.host, t.String(), s.cfg.keepDays(t)); err != nil {
			return fmt.Errorf("update collector_retention: %w", err)
		}
		days := make([]time.Time, 0, partitionsAhead+1)
		for i := range partitionsAhead + 1 {
			days = append(days, today.AddDate(0, 0, i))
		}
		if err := s.ensurePartitions(ctx, t, days); err != nil {
			return err
		}
		var keep int
		if err := s.conn.QueryRow(ctx, "SELECT CASE WHEN bool_or(keep_days = 0) THEN 0 ELSE max(keep_days) END FROM collector_retention WHERE tbl = $1",
			t.String()).Scan(&keep); err != nil {
			return fmt.Errorf("read collector_retention: %w", err)
		}
		if keep == 0 {
			continue
		}
		cut := now.Add(-time.Duration(keep) * 24 * time.Hour)
		dropped, err := dropPartitionsBefore(ctx, s.conn, t.String(), cut)
		if err != nil {
			return err
		}
		if len(dropped) > 0 {
			s.known = make(map[string]bool) // a dropped day is no longer there
			s.cfg.Log.Info("dropped central partitions past retention", "table", t, "kept_days", keep, "partitions", dropped)
		}
	}
	s.maintained = now
	return nil
}

func isPartitioned(t store.Table) bool { return t != store.Days }

// needPartitions is a batch of rows some of which no partition known to
// this sync holds.
type needPartitions struct {
	table store.Table
	days  []time.Time
}

func (n *needPartitions) Error() string {
	return fmt.Sprintf("%d days of %s without a partition", len(n.days), n.table)
}

// missingDays returns the days of rows of t that no partition known to
// this sync holds, when the collector manages t's partitions.
func (s *Syncer) missingDays(t store.Table, rows []traffic.Row) []time.Time {
	if s.cfg.Partitions == UsePartitions || !isPartitioned(t) {
		return nil
	}
	var days []time.Time
	seen := make(map[time.Time]bool)
	for _, r := range rows {
		day := dayOf(r.Start)
		if !seen[day] && !s.known[partitionName(t.String(), day)] {
			days = append(days, day)
		}
		seen[day] = true
	}
	return days
}

// ensurePartitions makes sure partitions of t hold days, and remembers
// that they do.
func (s *Syncer) ensurePartitions(ctx context.Context, t store.Table, days []time.Time) error {
	if err := ensurePartitions(ctx, s.conn, t.String(), days); err != nil {
		return err
	}
	for _, day := range days {
		s.known[partitionName(t.String(), day)] = true
	}
	return nil
}

// partitionHint says what to do when err is a row without a partition
// while the operator manages them.
func (s *Syncer) partitionHint(err error) string {
	var pgErr *pgconn.PgError
	if s.cfg.Partitions != UsePartitions || !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Message, "no partition of relation") {
		return ""
	}
	return " (SYNC_POSTGRES_PARTITIONS=use: create the day's partition, or set SYNC_POSTGRES_PARTITIONS=manage)"
}

// makePartitions makes the partitions a batch found missing.
func (s *Syncer) makePartitions(ctx context.Context, need *needPartitions) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	return s.ensurePartitions(ctx, need.table, need.days)
}
