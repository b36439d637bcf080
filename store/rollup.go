package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Defaults of Retention.
const (
	DefaultMinuteRetention = 14 * 24 * time.Hour
	DefaultHourlyRetention = 400 * 24 * time.Hour
)

// Retention says how long the finer tables keep their rows once they are
// rolled up; daily rows are kept forever. A zero field takes its default.
// Hourly rows are never deleted while minute rows of the same time remain,
// whatever the settings, so that every time is answered by one table.
type Retention struct {
	Minutes time.Duration
	Hourly  time.Duration
}

func (r Retention) withDefaults() Retention {
	if r.Minutes <= 0 {
		r.Minutes = DefaultMinuteRetention
	}
	if r.Hourly <= 0 {
		r.Hourly = DefaultHourlyRetention
	}
	return r
}

// horizons is the row of rollup_state: how far rollups and retention have
// gone, in unix seconds. The since fields are hour (minute_since) and day
// (hourly_since) boundaries, and never pass the matching until field: rows
// are deleted only once rolled up.
type horizons struct {
	hourlyUntil, dailyUntil  int64
	minuteSince, hourlySince int64
}

func readHorizons(ctx context.Context, q querier) (horizons, error) {
	var h horizons
	err := q.QueryRowContext(ctx, "SELECT hourly_until, daily_until, minute_since, hourly_since FROM rollup_state").
		Scan(&h.hourlyUntil, &h.dailyUntil, &h.minuteSince, &h.hourlySince)
	if err != nil {
		return h, fmt.Errorf("read rollup state: %w", err)
	}
	return h, nil
}

const (
	// rollupChunk bounds the minutes one transaction rolls up, and so the
	// minute rows it deletes, so that catching up on a long history (a file
	// imported from the earlier tool) neither holds the write lock for long
	// nor grows the WAL by the whole history.
	rollupChunk = 24 * 3600
	// dailyChunk does the same for days, made of 24 rows per client.
	dailyChunk = 31 * 86400
)

// floorTo returns t rounded down to a multiple of step.
func floorTo(t, step int64) int64 {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}

// goal is where maintenance is headed as of a time: rollups up to the
// hour that closed, retention cuts as the settings say. The cuts are bounded
// further by what is rolled up when applied.
type goal struct {
	hourEnd, minuteCut, hourlyCut int64
}

func goalOf(closed, now time.Time, keep Retention) goal {
	return goal{
		hourEnd:   floorTo(closed.Unix(), Hours.step()),
		minuteCut: floorTo(now.Add(-keep.Minutes).Unix(), Hours.step()),
		hourlyCut: floorTo(now.Add(-keep.Hourly).Unix(), Days.step()),
	}
}

// behind reports whether h has work left towards g, so that a flush with
// nothing to do opens no transaction.
func (h horizons) behind(g goal) bool {
	return h.hourlyUntil < g.hourEnd ||
		h.dailyUntil < floorTo(h.hourlyUntil, Days.step()) ||
		h.minuteSince < min(g.minuteCut, h.hourlyUntil) ||
		h.hourlySince < min(g.hourlyCut, h.dailyUntil, floorTo(h.minuteSince, Days.step()))
}

// maintain rolls up the hours that ended by closed, then the days whose
// hours are all rolled up, and deletes the rows that retention keep no longer
// holds as of now. Each chunk of work is a transaction of its own; it goes on
// until caught up or budget is spent, leaving the rest to the next call.
// Nothing may be written under a time before closed afterwards except
// through write, which adds such rows to the rollups as well.
func (s *Store) maintain(ctx context.Context, closed, now time.Time, keep Retention, budget time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := goalOf(closed, now, keep.withDefaults())
	deadline := time.Now().Add(budget)
	for s.state.behind(g) {
		if err := s.maintainChunk(ctx, g); err != nil {
			return fmt.Errorf("roll up %s: %w", s.path, err)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	// A name is looked up again every day its client is active, so one
	// older than the hourly rows kept belongs to a client long gone.
	if _, err := s.db.ExecContext(ctx, "DELETE FROM names WHERE updated < ?", g.hourlyCut); err != nil {
		return fmt.Errorf("prune names in %s: %w", s.path, err)
	}
	return nil
}

// maintainChunk does one transaction of maintain's work. s.mu must be held.
func (s *Store) maintainChunk(ctx context.Context, g goal) error {
	cur := s.state
	next := cur
	var folds [2]folded // of the hourly and the daily rollup
	err := s.inWrite(ctx, func(tx *sql.Tx, seq int64) error {
		var err error
		if next.hourlyUntil, folds[0], err = s.rollup(ctx, tx, Hours, cur.hourlyUntil, g.hourEnd, rollupChunk, seq); err != nil {
			return err
		}
		if next.dailyUntil, folds[1], err = s.rollup(ctx, tx, Days, cur.dailyUntil, floorTo(next.hourlyUntil, Days.step()), dailyChunk, seq); err != nil {
			return err
		}
		if next.dailyUntil > cur.dailyUntil {
			if err := pruneProven(ctx, tx, next.dailyUntil); err != nil {
				return err
			}
		}
		if next.minuteSince, err = prune(ctx, tx, Minutes, cur.minuteSince, min(g.minuteCut, next.hourlyUntil)); err != nil {
			return err
		}
		hourlyCut := min(g.hourlyCut, next.dailyUntil, floorTo(next.minuteSince, Days.step()))
		if next.hourlySince, err = prune(ctx, tx, Hours, cur.hourlySince, hourlyCut); err != nil {
			return err
		}
		if next.hourlySince > cur.hourlySince {
			if err := pruneEgress(ctx, tx, next.hourlySince); err != nil {
				return err
			}
		}
		if err := maintainPeers(ctx, tx, cur, next); err != nil {
			return err
		}
		if err := pruneHostd(ctx, tx, next.minuteSince, next.hourlySince); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE rollup_state SET hourly_until = ?, daily_until = ?, minute_since = ?, hourly_since = ?",
			next.hourlyUntil, next.dailyUntil, next.minuteSince, next.hourlySince)
		if err != nil {
			return fmt.Errorf("save rollup state: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.state = next
	for i, t := range []Table{Hours, Days} {
		s.folds[t].record(s.opts.Log, s.opts.Now(), folds[i])
	}
	return nil
}

// rollup sums the rows of t's finer table from until on into t, at most
// chunk seconds of them and not past end, and returns the new until and
// what the row budget folded. A gap with no rows is passed over in one
// step, so a file idle for months costs no more than one that was not.
// The write is recorded as seq.
func (s *Store) rollup(ctx context.Context, tx *sql.Tx, t Table, until, end, chunk, seq int64) (int64, folded, error) {
	if until >= end {
		return until, folded{}, nil
	}
	var first sql.NullInt64
	if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT MIN(timestamp) FROM %s WHERE timestamp >= ?", t-1), until).Scan(&first); err != nil {
		return until, folded{}, fmt.Errorf("find rows to roll up into %s: %w", t, err)
	}
	if !first.Valid {
		return end, folded{}, nil
	}
	start := max(until, floorTo(first.Int64, t.step()))
	if start >= end {
		return end, folded{}, nil
	}
	stop := min(start+chunk, end)
	f, err := s.rollupRange(ctx, tx, t, start, stop, seq)
	if err != nil {
		return until, folded{}, fmt.Errorf("roll up %s from %d to %d: %w", t, start, stop, err)
	}
	return stop, f, nil
}

// prune deletes the rows of t before cut when that is later than since,
// with what write_log holds of their times, and returns the new since.
func prune(ctx context.Context, tx *sql.Tx, t Table, since, cut int64) (int64, error) {
	if cut <= since {
		return since, nil
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE timestamp < ?", t), cut); err != nil {
		return since, fmt.Errorf("delete rows of %s before %d: %w", t, cut, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM write_log WHERE tbl = ? AND timestamp < ?", t.String(), cut); err != nil {
		return since, fmt.Errorf("delete the writes to %s before %d: %w", t, cut, err)
	}
	return cut, nil
}
