package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/back2basic/collector/traffic"
)

// egressSlot is the length of a row of egress_5m in seconds: the samples
// a provider's 95th-percentile bill is taken over.
const egressSlot = 300

// egress_5m holds the host's egress (every client's up bytes, every
// class) per 5-minute slot, so that a whole billing period's samples
// exist when minute rows are kept for less (RETENTION_MINUTES_DAYS). It is
// kept as long as the hourly rows. A slot without a row sent nothing.
// egress_since is the first slot the table covers: NULL until traffic is
// first stored, then the first slot written (or the oldest minute kept
// when the table was added), raised as retention deletes slots. A slot
// before it is not known, where one after it without a row is 0.
const createEgressSQL = `CREATE TABLE egress_5m (
	timestamp INTEGER PRIMARY KEY,
	bytes INTEGER NOT NULL
);
CREATE TABLE egress_since (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	timestamp INTEGER
);
INSERT INTO egress_since VALUES (1, NULL)`

// addEgressSlots gives a version 7 file egress_5m, filled from the minute
// rows it keeps: the slots before them are not known, and egress_since
// says so.
func addEgressSlots(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx, createEgressSQL,
		fmt.Sprintf(`INSERT INTO egress_5m (timestamp, bytes)
SELECT timestamp - timestamp %% %[1]d, SUM(%[2]s) FROM traffic_minute
GROUP BY timestamp - timestamp %% %[1]d HAVING SUM(%[2]s) > 0`, egressSlot, upBytesSum()),
		fmt.Sprintf("UPDATE egress_since SET timestamp = (SELECT MIN(timestamp) - MIN(timestamp) %% %d FROM traffic_minute)", egressSlot))
}

// upBytesSum is the SQL sum of a traffic row's up bytes, every class.
func upBytesSum() string {
	var sum string
	for _, c := range columns {
		if c.dir == traffic.Up && !c.packets {
			if sum != "" {
				sum += " + "
			}
			sum += c.name
		}
	}
	return sum
}

// addEgress adds the up bytes of rows to their slots in egress_5m, and
// marks the table as covering them. A row merged into an hour or a day
// while the database could not be written counts in its first slot.
func addEgress(ctx context.Context, tx *sql.Tx, rows []keyedRow) error {
	slots := make(map[int64]uint64)
	first := int64(-1)
	for _, r := range rows {
		at := floorTo(r.at, egressSlot)
		if first < 0 || at < first {
			first = at
		}
		for c := range traffic.NumClasses {
			if b := r.traffic[c][traffic.Up].Bytes; b > 0 {
				slots[at] += b
			}
		}
	}
	if first < 0 {
		return nil
	}
	for at, b := range slots {
		_, err := tx.ExecContext(ctx, `INSERT INTO egress_5m (timestamp, bytes) VALUES (?, ?)
ON CONFLICT (timestamp) DO UPDATE SET bytes = bytes + excluded.bytes`, at, int64(b))
		if err != nil {
			return fmt.Errorf("add to egress_5m at %d: %w", at, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE egress_since SET timestamp = min(coalesce(timestamp, ?1), ?1)", first); err != nil {
		return fmt.Errorf("save where egress_5m begins: %w", err)
	}
	return nil
}

// pruneEgress deletes the slots before cut, as retention deletes hourly
// rows.
func pruneEgress(ctx context.Context, tx *sql.Tx, cut int64) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM egress_5m WHERE timestamp < ?", cut); err != nil {
		return fmt.Errorf("delete egress_5m before %d: %w", cut, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE egress_since SET timestamp = max(timestamp, ?) WHERE timestamp IS NOT NULL", cut); err != nil {
		return fmt.Errorf("save where egress_5m begins: %w", err)
	}
	return nil
}

// EgressSamples are the host's egress bytes of each whole 5-minute slot
// in a span that egress_5m covers.
type EgressSamples struct {
	// From is the start of the first slot sampled, To the end of the
	// last; both zero without samples.
	From, To time.Time
	// Slots are the bytes of each slot from From on, 0 for a slot in
	// which nothing was sent.
	Slots []uint64
}

// EgressSlots returns the host's egress per 5-minute slot over the whole
// slots of [since, until) that egress_5m covers: a span that begins before
// it (before the table existed, or before retention) is sampled from its
// first slot on, and From says so.
func (s *Store) EgressSlots(ctx context.Context, since, until time.Time) (EgressSamples, error) {
	var out EgressSamples
	err := s.read(ctx, func(tx *sql.Tx, _ horizons) error {
		var covered sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT timestamp FROM egress_since").Scan(&covered); err != nil {
			return err
		}
		if !covered.Valid {
			return nil
		}
		from := max(floorTo(since.Unix()+egressSlot-1, egressSlot), covered.Int64)
		to := floorTo(until.Unix(), egressSlot)
		if from >= to {
			return nil
		}
		out = EgressSamples{From: time.Unix(from, 0), To: time.Unix(to, 0), Slots: make([]uint64, (to-from)/egressSlot)}
		rows, err := tx.QueryContext(ctx, "SELECT timestamp, bytes FROM egress_5m WHERE timestamp >= ? AND timestamp < ?", from, to)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var at, b int64
			if err := rows.Scan(&at, &b); err != nil {
				return err
			}
			out.Slots[(at-from)/egressSlot] = uint64(b)
		}
		return rows.Err()
	})
	if err != nil {
		return EgressSamples{}, fmt.Errorf("read egress_5m from %s: %w", s.path, err)
	}
	return out, nil
}
