package pgsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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

// Comparison is what Compare found.
type Comparison struct {
	// Compared counts the local rows compared.
	Compared int
	// Pending counts the local rows written since the last sync, left
	// out: the central side is yet to get them.
	Pending int
	// Diffs names each row that differs, one line each, in the order of
	// tables and times.
	Diffs []string
}

// Compare compares this host's central rows with the local ones, table by
// table, row by row, over the span each local table keeps whole (minute
// and hourly rows from where retention has left them; the central side
// keeps the older ones). Rows written since the last sync are left out,
// so that it can run beside the daemon; it is exact when nothing is
// written while it reads.
func (s *Syncer) Compare(ctx context.Context) (Comparison, error) {
	var c Comparison
	connectCtx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(connectCtx, s.conf)
	if err != nil {
		return c, s.secret.wrap(fmt.Errorf("connect to %s: %w", s.where(), err))
	}
	defer conn.Close(context.Background())
	for _, t := range s.tables {
		local, since, err := s.localRows(ctx, t, store.Mark{})
		if err != nil {
			return c, err
		}
		cursor, err := s.store.SyncCursor(ctx, s.target, t)
		if err != nil {
			return c, err
		}
		pending, _, err := s.localRows(ctx, t, cursor)
		if err != nil {
			return c, err
		}
		central, err := s.centralRows(ctx, conn, t, since)
		if err != nil {
			return c, s.secret.wrap(fmt.Errorf("read %s of host %s from %s: %w", t, s.host, s.where(), err))
		}
		for k := range pending {
			delete(local, k)
			delete(central, k)
		}
		c.Compared += len(local)
		c.Pending += len(pending)
		c.Diffs = append(c.Diffs, compareRows(t, local, central)...)
	}
	return c, nil
}

// Verify returns an error naming the rows Compare finds different, the
// first maxDiffs of them.
func (s *Syncer) Verify(ctx context.Context) error {
	c, err := s.Compare(ctx)
	if err != nil || len(c.Diffs) == 0 {
		return err
	}
	return fmt.Errorf("%s:\n\t%s", s.differ(c), strings.Join(shown(c.Diffs), "\n\t"))
}

// differ says how many rows differ, and where.
func (s *Syncer) differ(c Comparison) string {
	return fmt.Sprintf("%d rows of host %s differ between the local database and %s", len(c.Diffs), s.host, s.where())
}

// shown returns the first maxDiffs of diffs, and a line counting the
// others.
func shown(diffs []string) []string {
	if len(diffs) <= maxDiffs {
		return diffs
	}
	return append(slices.Clip(diffs[:maxDiffs]), fmt.Sprintf("... and %d more", len(diffs)-maxDiffs))
}

// VerifyFile compares the central rows of the host with those of the
// SQLite file at sqlitePath, for `collector sync -verify`: it writes to w
// a line per row that differs, the first maxDiffs of them, and returns an
// error counting them; when none differs, a line saying how many rows
// agree, and nil. It only reads, and can run beside the daemon.
func VerifyFile(ctx context.Context, sqlitePath string, cfg Config, w io.Writer) error {
	st, err := store.OpenReadOnly(sqlitePath)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := New(st, cfg)
	if err != nil {
		return err
	}
	c, err := s.Compare(ctx)
	if err != nil {
		return fmt.Errorf("verify %s against %s: %w", sqlitePath, s.where(), err)
	}
	if len(c.Diffs) > 0 {
		for _, line := range shown(c.Diffs) {
			fmt.Fprintln(w, line)
		}
		return errors.New(s.differ(c))
	}
	_, err = fmt.Fprintf(w, "%d rows of host %s agree between %s and %s; %d rows written since the last sync left out\n",
		c.Compared, s.host, sqlitePath, s.where(), c.Pending)
	return err
}

// localRows returns the rows of t in its window written after from, and
// where the window starts.
func (s *Syncer) localRows(ctx context.Context, t store.Table, from store.Mark) (map[rowKey]traffic.Traffic, time.Time, error) {
	rows := make(map[rowKey]traffic.Traffic)
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
			diffs = append(diffs, where+": "+counterDiffs(&c, &l))
		}
	}
	return diffs
}

// counterDiffs names the counters that differ between central and local.
func counterDiffs(central, local *traffic.Traffic) string {
	c, l := store.Counters(central), store.Counters(local)
	var diffs []string
	for i, name := range store.CounterNames() {
		if c[i] != l[i] {
			diffs = append(diffs, fmt.Sprintf("%s central %d, local %d", name, c[i], l[i]))
		}
	}
	return strings.Join(diffs, "; ")
}
