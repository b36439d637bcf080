package httpsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// verifyBatch is how many local rows Compare reads at a time.
const verifyBatch = 10000

// Totals is what a receiver answers for a table of a host over a span of
// time (see the package comment), and what the local file holds there.
type Totals struct {
	Rows int64             `json:"rows"`
	Sums map[string]uint64 `json:"sums"`
}

// add counts r in t.
func (t *Totals) add(r *traffic.Row) {
	if t.Sums == nil {
		t.Sums = make(map[string]uint64)
	}
	t.Rows++
	for i, v := range store.Counters(&r.Traffic) {
		t.Sums[store.CounterNames()[i]] += v
	}
}

// diff names what differs between the receiver's totals and the local
// ones, or returns "".
func (t Totals) diff(local Totals) string {
	var diffs []string
	if t.Rows != local.Rows {
		diffs = append(diffs, fmt.Sprintf("rows receiver %d, local %d", t.Rows, local.Rows))
	}
	for _, name := range store.CounterNames() {
		if r, l := t.Sums[name], local.Sums[name]; r != l {
			diffs = append(diffs, fmt.Sprintf("%s receiver %d, local %d", name, r, l))
		}
	}
	return strings.Join(diffs, "; ")
}

// Comparison is what Compare found.
type Comparison struct {
	// Compared counts the local rows compared.
	Compared int64
	// Diffs names each table whose totals differ, one line each.
	Diffs []string
}

// Compare asks the receiver for its totals of each table sent, over the
// table's local window up to the first row not yet sent, and compares
// them with the local file's. Rows written while it reads may make a
// table differ; it is exact when nothing is written meanwhile.
func (s *Syncer) Compare(ctx context.Context) (Comparison, error) {
	var c Comparison
	for _, t := range s.cfg.Tables {
		cursor, err := s.store.SyncCursor(ctx, s.target, t)
		if err != nil {
			return c, err
		}
		until, err := s.firstPending(ctx, t, cursor)
		if err != nil {
			return c, err
		}
		local, since, err := s.localTotals(ctx, t, until)
		if err != nil {
			return c, err
		}
		remote, err := s.remoteTotals(ctx, t, since, until)
		if err != nil {
			return c, fmt.Errorf("ask %s for its totals of %s: %w", s.where, t, err)
		}
		c.Compared += local.Rows
		if d := remote.diff(local); d != "" {
			c.Diffs = append(c.Diffs, fmt.Sprintf("%s of host %s from %d until %d: %s", t, s.host, since, until, d))
		}
	}
	return c, nil
}

// eachChange calls fn with every row of t in its window written after
// from, and returns where the window starts in unix seconds (0 for the
// daily table, kept whole).
func (s *Syncer) eachChange(ctx context.Context, t store.Table, from store.Mark, fn func(r *traffic.Row)) (since int64, err error) {
	for {
		b, err := s.store.Changes(ctx, t, from, verifyBatch)
		if err != nil {
			return 0, err
		}
		for i := range b.Rows {
			fn(&b.Rows[i])
		}
		if b.Done {
			if b.Since.IsZero() {
				return 0, nil
			}
			return b.Since.Unix(), nil
		}
		from = b.Next
	}
}

// firstPending returns the time of the earliest row of t written after
// cursor, or math.MaxInt64 when none is: the rows before it were sent as
// last written.
func (s *Syncer) firstPending(ctx context.Context, t store.Table, cursor store.Mark) (int64, error) {
	first := int64(math.MaxInt64)
	_, err := s.eachChange(ctx, t, cursor, func(r *traffic.Row) { first = min(first, r.Start.Unix()) })
	return first, err
}

// localTotals counts the rows of t in its window before until.
func (s *Syncer) localTotals(ctx context.Context, t store.Table, until int64) (Totals, int64, error) {
	var local Totals
	since, err := s.eachChange(ctx, t, store.Mark{}, func(r *traffic.Row) {
		if r.Start.Unix() < until {
			local.add(r)
		}
	})
	return local, since, err
}

// remoteTotals asks the receiver for its totals of t in [since, until).
func (s *Syncer) remoteTotals(ctx context.Context, t store.Table, since, until int64) (Totals, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	u := *s.url
	q := u.Query()
	q.Set("host", s.host)
	q.Set("table", t.String())
	q.Set("since", strconv.FormatInt(since, 10))
	q.Set("until", strconv.FormatInt(until, 10))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Totals{}, err
	}
	s.authorize(req)
	answer, status, _, err := s.do(req)
	if err != nil {
		return Totals{}, err
	}
	if status != http.StatusOK {
		return Totals{}, fmt.Errorf("%s answered %d: %s (a receiver answers GET with its totals: see collector's README, HTTP sync)", s.where, status, s.quote(answer))
	}
	var totals Totals
	if err := json.Unmarshal([]byte(answer), &totals); err != nil {
		return Totals{}, fmt.Errorf("%s answered with no totals (%v): %s", s.where, err, s.quote(answer))
	}
	return totals, nil
}

// VerifyFile compares what the receiver holds of the host with the
// SQLite file at sqlitePath, for `collector sync -verify`: it writes to w
// a line per table that differs and returns an error counting them; when
// none differs, a line saying how many rows agree, and nil. It only
// reads, and can run beside the daemon.
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
	defer s.Close()
	c, err := s.Compare(ctx)
	if err != nil {
		return fmt.Errorf("verify %s against %s: %w", sqlitePath, s.where, err)
	}
	if len(c.Diffs) > 0 {
		for _, line := range c.Diffs {
			fmt.Fprintln(w, line)
		}
		return errors.New(fmt.Sprintf("%d tables of host %s differ between %s and %s", len(c.Diffs), s.host, sqlitePath, s.where))
	}
	_, err = fmt.Fprintf(w, "%d rows of host %s agree between %s and %s (%s); rows not yet sent left out\n",
		c.Compared, s.host, sqlitePath, s.where, tableNames(s.cfg.Tables))
	return err
}
