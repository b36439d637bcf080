package pgsync

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// verifyBatch is how many local rows Verify reads at a time.
const verifyBatch = 10000

// maxDiffs bounds the differences Verify names.
const maxDiffs = 10

// rowKey is a row's place in a table: its start and its client.
type rowKey struct {
	start  int64
	client traffic.Client
}

// Verify compares this host's central rows with the local ones, table by
// table, over the span each local table keeps whole (minute and hourly
// rows from where retention has left them; the central side keeps the
// older ones), and returns an error naming the rows that differ. It is
// exact once the sync has caught up and nothing is being written.
func (s *Syncer) Verify(ctx context.Context) error {
	connectCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(connectCtx, s.conf)
	if err != nil {
		return s.secret.wrap(fmt.Errorf("connect to %s: %w", s.where(), err))
	}
	defer conn.Close(context.Background())
	var diffs []string
	for _, t := range tables {
		local, since, err := s.localRows(ctx, t)
		if err != nil {
			return err
		}
		central, err := s.centralRows(ctx, conn, t, since)
		if err != nil {
			return s.secret.wrap(fmt.Errorf("read %s of host %s from %s: %w", t, s.host, s.where(), err))
		}
		diffs = append(diffs, compareRows(t, local, central)...)
	}
	if len(diffs) == 0 {
		return nil
	}
	shown := diffs[:min(len(diffs), maxDiffs)]
	more := ""
	if len(diffs) > maxDiffs {
		more = fmt.Sprintf("\n\t... and %d more", len(diffs)-maxDiffs)
	}
	return fmt.Errorf("%d rows of host %s differ between the local database and %s:\n\t%s%s",
		len(diffs), s.host, s.where(), strings.Join(shown, "\n\t"), more)
}

// localRows returns the rows of t in its window, and where that starts.
func (s *Syncer) localRows(ctx context.Context, t store.Table) (map[rowKey]traffic.Traffic, time.Time, error) {
	rows := make(map[rowKey]traffic.Traffic)
	var from store.Mark
	for {
		b, err := s.store.Changes(ctx, t, from, verifyBatch)
		if err != nil {
			return nil, time.Time{}, err
		}
		for _, r := range b.Rows {
			rows[rowKey{r.Start.Unix(), r.Client}] = r.Traffic
		}
		if b.Done {
			return rows, b.Since, nil
		}
		from = b.Next
	}
}

// centralRows returns this host's rows of t from since on.
func (s *Syncer) centralRows(ctx context.Context, conn *pgx.Conn, t store.Table, since time.Time) (map[rowKey]traffic.Traffic, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE host = $1 AND timestamp >= $2",
		strings.Join(centralColumns[1:], ", "), t), s.host, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[rowKey]traffic.Traffic)
	var (
		start    time.Time
		ip       string
		counters = make([]uint64, len(store.CounterNames()))
	)
	dest := []any{&start, &ip}
	for i := range counters {
		dest = append(dest, &counters[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		client, err := traffic.ParseClient(ip)
		if err != nil {
			return nil, err
		}
		out[rowKey{start.Unix(), client}] = store.TrafficOf(counters)
	}
	return out, rows.Err()
}

// compareRows names the rows that differ between local and central.
func compareRows(t store.Table, local, central map[rowKey]traffic.Traffic) []string {
	keys := make([]rowKey, 0, len(local))
	for k := range local {
		keys = append(keys, k)
	}
	for k := range central {
		if _, ok := local[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b rowKey) int {
		return cmp.Or(cmp.Compare(a.start, b.start), a.client.Compare(b.client))
	})
	var diffs []string
	for _, k := range keys {
		l, inLocal := local[k]
		c, inCentral := central[k]
		where := fmt.Sprintf("%s %s at %s", t, k.client, time.Unix(k.start, 0).UTC().Format(time.RFC3339))
		switch {
		case !inCentral:
			diffs = append(diffs, where+": missing centrally")
		case !inLocal:
			diffs = append(diffs, where+": central only")
		case l != c:
			diffs = append(diffs, fmt.Sprintf("%s: central %v, local %v", where, store.Counters(&c), store.Counters(&l)))
		}
	}
	return diffs
}
