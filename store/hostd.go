package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// hostd's own figures live beside the traffic in three tables of their own,
// one per resolution: hostd_5m holds hostd's 5-minute periods as the daemon
// read them (usage in the period, not hostd's running totals), and
// hostd_hourly and hostd_daily their sums. Unlike the traffic's, these
// rollups are recomputed from the finer table for every hour and day a
// write touches, in the same transaction: hostd's periods arrive minutes
// late, or hours late after an outage, and are few (288 a day), so an
// hourly row always equals the sum of the 5-minute rows of its hour.
// Retention deletes them with the traffic of the same times: hostd_5m
// with the minute rows, hostd_hourly with the hourly rows; daily rows are
// kept. Writes of periods retention has already passed are dropped, so a
// recomputed hour or day never misses rows retention deleted.

// HostdTableName returns the hostd table that holds the resolution of the
// traffic table t: hostd_5m for Minutes, hostd_hourly, hostd_daily.
func HostdTableName(t Table) string {
	return [...]string{"hostd_5m", "hostd_hourly", "hostd_daily"}[t]
}

// hostdColumns are the columns of the hostd tables after timestamp, in
// the order HostdFigures scans them.
const hostdColumns = "periods, rhp_ingress, rhp_egress, syncer_ingress, syncer_egress, paid_egress, egress_price, version, quic"

// createHostdTableSQL creates one hostd table. timestamp is the start of
// the row's period, hour or day in unix seconds.
func createHostdTableSQL(t Table) string {
	return `CREATE TABLE ` + HostdTableName(t) + ` (
	timestamp INTEGER PRIMARY KEY,
	periods INTEGER NOT NULL,
	rhp_ingress INTEGER NOT NULL,
	rhp_egress INTEGER NOT NULL,
	syncer_ingress INTEGER,
	syncer_egress INTEGER,
	paid_egress INTEGER,
	egress_price REAL NOT NULL,
	version TEXT NOT NULL,
	quic INTEGER NOT NULL
)`
}

// hostdTablesSQL creates the three hostd tables.
func hostdTablesSQL() []string {
	return []string{createHostdTableSQL(Minutes), createHostdTableSQL(Hours), createHostdTableSQL(Days)}
}

// addHostd gives a version 9 file the hostd tables.
func addHostd(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx, hostdTablesSQL()...)
}

// HostdData is payload bytes hostd counted: what its connections read and
// wrote, without headers, retransmissions or handshakes.
type HostdData struct {
	Ingress uint64 `json:"ingress"`
	Egress  uint64 `json:"egress"`
}

// HostdFigures is what hostd counted in one stored row, or summed over a
// span of them.
type HostdFigures struct {
	// Start is the start of the row's 5-minute period, hour or day; of
	// the first row summed in a span.
	Start time.Time `json:"start"`
	// Periods is the number of hostd's 5-minute periods the figures
	// cover; fewer than the span holds where hostd was not read or a
	// period was left out (a counter reset).
	Periods int `json:"periods"`
	// RHP is the payload of hostd's renter protocol connections (RHP2,
	// RHP3 and RHP4; over QUIC only from hostd 2.6.0 on, see QUIC).
	RHP HostdData `json:"rhp"`
	// Syncer is the payload of hostd's consensus peers; nil where hostd
	// was older than 2.6.0, which did not count it, in any period summed.
	Syncer *HostdData `json:"syncer"`
	// PaidEgress is the bytes hostd was paid to send: its earned plus
	// potential egress revenue of the period divided by its egress price.
	// nil where the price was 0 in any period summed.
	PaidEgress *uint64 `json:"paid_egress"`
	// EgressPrice is hostd's egress price in SC per TB (10^12 bytes) at
	// the end of the last period summed.
	EgressPrice float64 `json:"egress_price_sc_per_tb"`
	// Version is hostd's version in the last period summed, QUIC whether
	// that version counted RHP4 over QUIC (2.6.0 on).
	Version string `json:"hostd_version"`
	QUIC    bool   `json:"quic"`
}

// add sums o, a later row, into f.
func (f *HostdFigures) add(o HostdFigures) {
	if f.Periods == 0 {
		*f = o
		return
	}
	f.Periods += o.Periods
	f.RHP.Ingress += o.RHP.Ingress
	f.RHP.Egress += o.RHP.Egress
	if f.Syncer == nil || o.Syncer == nil {
		f.Syncer = nil
	} else {
		f.Syncer = &HostdData{Ingress: f.Syncer.Ingress + o.Syncer.Ingress, Egress: f.Syncer.Egress + o.Syncer.Egress}
	}
	if f.PaidEgress == nil || o.PaidEgress == nil {
		f.PaidEgress = nil
	} else {
		sum := *f.PaidEgress + *o.PaidEgress
		f.PaidEgress = &sum
	}
	f.EgressPrice, f.Version, f.QUIC = o.EgressPrice, o.Version, o.QUIC
}

// scanHostd reads a row of lead, then timestamp and hostdColumns.
func scanHostd(rows *sql.Rows, lead ...any) (HostdFigures, error) {
	var (
		f                     HostdFigures
		at                    int64
		syncerIn, syncerOut   sql.NullInt64
		paid                  sql.NullInt64
		rhpIngress, rhpEgress int64
	)
	if err := rows.Scan(append(lead, &at, &f.Periods, &rhpIngress, &rhpEgress, &syncerIn, &syncerOut, &paid, &f.EgressPrice, &f.Version, &f.QUIC)...); err != nil {
		return f, err
	}
	f.Start = time.Unix(at, 0)
	f.RHP = HostdData{Ingress: uint64(rhpIngress), Egress: uint64(rhpEgress)}
	if syncerIn.Valid && syncerOut.Valid {
		f.Syncer = &HostdData{Ingress: uint64(syncerIn.Int64), Egress: uint64(syncerOut.Int64)}
	}
	if paid.Valid {
		p := uint64(paid.Int64)
		f.PaidEgress = &p
	}
	return f, nil
}

// HostdPeriods returns the 5-minute periods stored from hostd that start
// in [from, to), in time order. Retention bounds how far back they reach.
func (s *Store) HostdPeriods(ctx context.Context, from, to time.Time) ([]HostdFigures, error) {
	var out []HostdFigures
	err := s.read(ctx, func(tx *sql.Tx, _ horizons) error {
		rows, err := tx.QueryContext(ctx, "SELECT timestamp, "+hostdColumns+" FROM hostd_5m WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp", from.Unix(), to.Unix())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			f, err := scanHostd(rows)
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read hostd's periods from %s: %w", s.path, err)
	}
	return out, nil
}

// LastHostdPeriod returns the start of the last 5-minute period stored
// from hostd; ok is false when none is (a new file, or retention deleted
// them all).
func (s *Store) LastHostdPeriod(ctx context.Context) (start time.Time, ok bool, err error) {
	var at sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(timestamp) FROM hostd_5m").Scan(&at); err != nil {
		return time.Time{}, false, fmt.Errorf("read hostd's last period from %s: %w", s.path, err)
	}
	return time.Unix(at.Int64, 0), at.Valid, nil
}

// HostdSum sums hostd's figures over the query's span (its client is
// ignored: hostd knows no clients), from the coarsest tables that answer
// exactly, as TopClients does for the traffic: a 5-minute period counts
// where it starts, an hour or day where retention left only those as for
// the traffic. ok is false when no period of the span is stored.
func (s *Store) HostdSum(ctx context.Context, q Query) (f HostdFigures, ok bool, err error) {
	from, to := q.span()
	err = s.read(ctx, func(tx *sql.Tx, h horizons) error {
		for _, p := range plan(from, to, h) {
			rows, err := tx.QueryContext(ctx, "SELECT timestamp, "+hostdColumns+" FROM "+HostdTableName(p.table)+" WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp", p.from, p.to)
			if err != nil {
				return err
			}
			for rows.Next() {
				row, err := scanHostd(rows)
				if err != nil {
					rows.Close()
					return err
				}
				f.add(row)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return HostdFigures{}, false, fmt.Errorf("sum hostd's figures from %s: %w", s.path, err)
	}
	return f, f.Periods > 0, nil
}

// WriteHostdPeriods stores hostd's 5-minute periods (Periods 1 each,
// Start on a 5-minute boundary), replacing periods stored before at the
// same times, and recomputes the hours and days they fall in. Periods
// retention has already deleted the traffic of are dropped.
func (s *Store) WriteHostdPeriods(ctx context.Context, periods []HostdFigures) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []HostdFigures
	for _, p := range periods {
		if at := p.Start.Unix(); at >= s.state.minuteSince && at%hostdStep(Minutes) == 0 {
			keep = append(keep, p)
		} else if at%hostdStep(Minutes) != 0 {
			return fmt.Errorf("store hostd period %s: not the start of a 5-minute period", p.Start.UTC().Format(time.RFC3339))
		}
	}
	if len(keep) == 0 {
		return nil
	}
	err := s.inWrite(ctx, func(tx *sql.Tx, seq int64) error {
		insert, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO hostd_5m (timestamp, "+hostdColumns+") VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)")
		if err != nil {
			return err
		}
		defer insert.Close()
		lo, hi := keep[0].Start.Unix(), keep[0].Start.Unix()
		for _, p := range keep {
			at := p.Start.Unix()
			lo, hi = min(lo, at), max(hi, at)
			var syncerIn, syncerOut, paid sql.NullInt64
			if p.Syncer != nil {
				syncerIn, syncerOut = sql.NullInt64{Int64: int64(p.Syncer.Ingress), Valid: true}, sql.NullInt64{Int64: int64(p.Syncer.Egress), Valid: true}
			}
			if p.PaidEgress != nil {
				paid = sql.NullInt64{Int64: int64(*p.PaidEgress), Valid: true}
			}
			if _, err := insert.ExecContext(ctx, at, int64(p.RHP.Ingress), int64(p.RHP.Egress), syncerIn, syncerOut, paid, p.EgressPrice, p.Version, p.QUIC); err != nil {
				return fmt.Errorf("insert period %d: %w", at, err)
			}
		}
		for _, t := range []Table{Hours, Days} {
			a, b := floorTo(lo, t.step()), floorTo(hi, t.step())+t.step()
			if _, err := tx.ExecContext(ctx, hostdRollupSQL(t), a, b); err != nil {
				return fmt.Errorf("sum into %s: %w", HostdTableName(t), err)
			}
		}
		for _, t := range []Table{Minutes, Hours, Days} {
			_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO write_log (tbl, timestamp, seq)
SELECT ?1, timestamp, ?2 FROM %s WHERE timestamp >= ?3 AND timestamp <= ?4
ON CONFLICT (tbl, timestamp) DO UPDATE SET seq = excluded.seq`, HostdTableName(t)), HostdTableName(t), seq, floorTo(lo, t.step()), hi)
			if err != nil {
				return fmt.Errorf("record the write to %s: %w", HostdTableName(t), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store hostd's periods in %s: %w", s.path, err)
	}
	return nil
}

// hostdRollupSQL replaces the rows of hostd table t in [?1, ?2) with the
// sums of the finer table's rows. A sum of syncer or paid bytes is NULL
// unless every row summed has it, so a ratio is never taken over part of a
// span; price, version and QUIC are the last row's (SQLite takes bare
// columns from the row that gave MAX).
func hostdRollupSQL(t Table) string {
	step := fmt.Sprint(t.step())
	whole := func(c string) string {
		return "CASE WHEN count(" + c + ") = count(*) THEN SUM(" + c + ") END"
	}
	return `INSERT OR REPLACE INTO ` + HostdTableName(t) + ` (timestamp, ` + hostdColumns + `)
SELECT bucket, ` + hostdColumns + ` FROM (
	SELECT timestamp - timestamp % ` + step + ` AS bucket, MAX(timestamp),
		SUM(periods) AS periods, SUM(rhp_ingress) AS rhp_ingress, SUM(rhp_egress) AS rhp_egress,
		` + whole("syncer_ingress") + ` AS syncer_ingress, ` + whole("syncer_egress") + ` AS syncer_egress,
		` + whole("paid_egress") + ` AS paid_egress, egress_price, version, quic
	FROM ` + HostdTableName(t-1) + ` WHERE timestamp >= ?1 AND timestamp < ?2
	GROUP BY bucket)`
}

// pruneHostd deletes the rows of hostd_5m before minuteCut and of
// hostd_hourly before hourlyCut, with what write_log holds of them: the
// traffic's retention, applied in the same transaction.
func pruneHostd(ctx context.Context, tx *sql.Tx, minuteCut, hourlyCut int64) error {
	for t, cut := range [...]int64{Minutes: minuteCut, Hours: hourlyCut} {
		name := HostdTableName(Table(t))
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+name+" WHERE timestamp < ?", cut); err != nil {
			return fmt.Errorf("delete rows of %s before %d: %w", name, cut, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM write_log WHERE tbl = ? AND timestamp < ?", name, cut); err != nil {
			return fmt.Errorf("delete the writes to %s before %d: %w", name, cut, err)
		}
	}
	return nil
}

// EgressPrice returns hostd's egress price in SC per TB as of at: that of
// the last stored 5-minute period starting at or before it, or where
// retention left only hours or days, of the last hour or day that ended
// by then. ok is false when none is stored, or the price was 0, or the
// file cannot be read now (a locked file is retried with the next call).
func (s *Store) EgressPrice(at time.Time) (scPerTB float64, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultLockWait)
	defer cancel()
	var parts []string
	for _, t := range []Table{Minutes, Hours, Days} {
		// A row's price is as of its end; a 5-minute row's counts from
		// its start, since that is hostd's finest.
		end := fmt.Sprintf("timestamp + %d", hostdStep(t))
		parts = append(parts, fmt.Sprintf("SELECT * FROM (SELECT %[1]s AS ended, %[2]d AS finer, egress_price FROM %[3]s WHERE %[1]s <= ?1 + %[4]d ORDER BY timestamp DESC LIMIT 1)",
			end, t, HostdTableName(t), hostdStep(Minutes)))
	}
	query := "SELECT egress_price FROM (" + strings.Join(parts, " UNION ALL ") + ") ORDER BY ended DESC, finer LIMIT 1"
	if err := s.db.QueryRowContext(ctx, query, at.Unix()).Scan(&scPerTB); err != nil || scPerTB <= 0 {
		return 0, false
	}
	return scPerTB, true
}

// hostdStep is the span of one row of the hostd table of t in seconds.
func hostdStep(t Table) int64 {
	if t == Minutes {
		return 300
	}
	return t.step()
}

// HostdChanges returns the rows of the hostd table of t written after the
// write numbered seq (0: every row), in the order written, and the number
// of the last write among them (seq when none). A copy elsewhere sets its
// rows to these, so that a row sent again lands once.
func (s *Store) HostdChanges(ctx context.Context, t Table, seq int64) (rows []HostdFigures, last int64, err error) {
	last = seq
	err = s.read(ctx, func(tx *sql.Tx, _ horizons) error {
		cols := "r.timestamp, r." + strings.ReplaceAll(hostdColumns, ", ", ", r.")
		q, err := tx.QueryContext(ctx, "SELECT w.seq, "+cols+" FROM write_log AS w JOIN "+HostdTableName(t)+` AS r ON r.timestamp = w.timestamp
WHERE w.tbl = ? AND w.seq > ? ORDER BY w.seq, w.timestamp`, HostdTableName(t), seq)
		if err != nil {
			return err
		}
		defer q.Close()
		for q.Next() {
			var (
				rowSeq int64
				f      HostdFigures
			)
			if f, err = scanHostd(q, &rowSeq); err != nil {
				return err
			}
			rows, last = append(rows, f), max(last, rowSeq)
		}
		return q.Err()
	})
	if err != nil {
		return nil, seq, fmt.Errorf("read rows of %s written after write %d from %s: %w", HostdTableName(t), seq, s.path, err)
	}
	return rows, last, nil
}

// HostdSyncCursor returns the number of the last write of the hostd table
// of t copied to target; 0 before the first copy, and after
// ResetSyncCursors.
func (s *Store) HostdSyncCursor(ctx context.Context, target string, t Table) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, "SELECT seq FROM sync_cursor WHERE target = ? AND tbl = ?", target, HostdTableName(t)).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read sync cursor of %s from %s: %w", HostdTableName(t), s.path, err)
	}
	return seq, nil
}

// SaveHostdSyncCursor records that the copy at target holds the rows of
// the hostd table of t up to the write numbered seq.
func (s *Store) SaveHostdSyncCursor(ctx context.Context, target string, t Table, seq int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sync_cursor (target, tbl, seq, timestamp, ip) VALUES (?, ?, ?, 0, '')
ON CONFLICT (target, tbl) DO UPDATE SET seq = excluded.seq`, target, HostdTableName(t), seq)
	if err != nil {
		return fmt.Errorf("save sync cursor of %s in %s: %w", HostdTableName(t), s.path, err)
	}
	return nil
}
