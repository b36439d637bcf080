package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/traffic"
)

// createAlertsSQL keeps the alerts the daemon raised, so that a restart
// neither raises one again nor forgets one that has yet to resolve. The
// columns are what the daemon looks alerts up by, and what a user of the
// sqlite3 shell wants to see; payload holds the rest as JSON, written and
// read by package alert alone. resolved is NULL while the alert fires.
const createAlertsSQL = `CREATE TABLE alerts (
	id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	subject TEXT NOT NULL,
	started INTEGER NOT NULL,
	resolved INTEGER,
	payload TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX alerts_resolved ON alerts (resolved)`

// addAlerts adds the alerts table to a version 2 file.
func addAlerts(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx, createAlertsSQL)
}

// SavedAlert is an alert as the alerts table keeps it.
type SavedAlert struct {
	// ID is the alert's stable id: its firing and its resolution share it.
	ID      string
	Kind    string
	Subject string
	// Started is when it began; Resolved when it ended, zero while it
	// fires. Both are kept to the second.
	Started, Resolved time.Time
	// Payload is the whole alert, as JSON.
	Payload []byte
}

// SaveAlert adds a, or replaces the alert of the same ID: an alert is
// saved as it fires and again as it resolves.
func (s *Store) SaveAlert(ctx context.Context, a SavedAlert) error {
	var resolved sql.NullInt64
	if !a.Resolved.IsZero() {
		resolved = sql.NullInt64{Int64: a.Resolved.Unix(), Valid: true}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO alerts (id, kind, subject, started, resolved, payload) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, subject = excluded.subject, started = excluded.started,
	resolved = excluded.resolved, payload = excluded.payload`,
		a.ID, a.Kind, a.Subject, a.Started.Unix(), resolved, string(a.Payload))
	if err != nil {
		return fmt.Errorf("save alert %s in %s: %w", a.ID, s.path, err)
	}
	return nil
}

// Alerts returns the alerts still firing and those resolved at or after
// resolvedSince, oldest first.
func (s *Store) Alerts(ctx context.Context, resolvedSince time.Time) ([]SavedAlert, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, kind, subject, started, resolved, payload FROM alerts
WHERE resolved IS NULL OR resolved >= ? ORDER BY started, id`, resolvedSince.Unix())
	if err != nil {
		return nil, fmt.Errorf("read alerts from %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []SavedAlert
	for rows.Next() {
		var (
			a        SavedAlert
			started  int64
			resolved sql.NullInt64
			payload  string
		)
		if err := rows.Scan(&a.ID, &a.Kind, &a.Subject, &started, &resolved, &payload); err != nil {
			return nil, fmt.Errorf("read alerts from %s: %w", s.path, err)
		}
		a.Started, a.Payload = time.Unix(started, 0), []byte(payload)
		if resolved.Valid {
			a.Resolved = time.Unix(resolved.Int64, 0)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts from %s: %w", s.path, err)
	}
	return out, nil
}

// ForgetAlerts deletes the alerts resolved before t, so that the table
// stays small however long the daemon runs.
func (s *Store) ForgetAlerts(ctx context.Context, t time.Time) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM alerts WHERE resolved < ?", t.Unix()); err != nil {
		return fmt.Errorf("delete old alerts from %s: %w", s.path, err)
	}
	return nil
}

// ClassMinute is what one client moved in one class, both directions
// summed, in one stored minute.
type ClassMinute struct {
	Minute time.Time
	Client traffic.Client
	Bytes  uint64
}

// ClassMinutes calls fn for the minute rows from since on, in time order,
// with the bytes of class: for every row that has some, and for the first
// row of every minute even without, so that fn learns of each minute the
// daemon counted. It stops at fn's first error and returns it. It reads
// minute rows only: retention bounds how far back it reaches.
func (s *Store) ClassMinutes(ctx context.Context, class traffic.Class, since time.Time, fn func(ClassMinute) error) error {
	// The primary key (timestamp, ip) gives the rows in time order, and
	// a minute's first row is its least ip: no window and no sort, which
	// took over half the time on a busy week.
	bytes := bytesOf(class)
	query := fmt.Sprintf(`SELECT timestamp, ip, %[1]s FROM %[2]s AS t WHERE timestamp >= ?
AND (%[1]s > 0 OR ip = (SELECT min(ip) FROM %[2]s WHERE timestamp = t.timestamp))
ORDER BY timestamp, ip`, bytes, Minutes)
	return s.eachMinute(ctx, class.String()+" minutes", query, since, func(rows *sql.Rows) error {
		var (
			at, bytes int64
			ip        string
			m         ClassMinute
		)
		if err := rows.Scan(&at, &ip, &bytes); err != nil {
			return err
		}
		var err error
		if m.Client, err = traffic.ParseClient(ip); err != nil {
			return err
		}
		m.Minute, m.Bytes = time.Unix(at, 0), uint64(bytes)
		if err := fn(m); err != nil {
			return callerError{err}
		}
		return nil
	})
}

// callerError is an error of a caller's function, which stops a read and
// is returned as it is.
type callerError struct{ error }

// eachMinute reads the rows query gives of the minute rows from since on,
// in one read, calling row for each. A callerError of row's is returned
// unwrapped; any other failure is named as reading what.
func (s *Store) eachMinute(ctx context.Context, what, query string, since time.Time, row func(*sql.Rows) error) error {
	err := s.read(ctx, func(tx *sql.Tx, _ horizons) error {
		rows, err := tx.QueryContext(ctx, query, since.Unix())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	var caller callerError
	if errors.As(err, &caller) {
		return caller.error
	}
	if err != nil {
		return fmt.Errorf("read %s from %s: %w", what, s.path, err)
	}
	return nil
}

// bytesOf returns the SQL sum of the byte columns of classes, both
// directions.
func bytesOf(classes ...traffic.Class) string {
	var sum []string
	for _, c := range columns {
		if slices.Contains(classes, c.class) && !c.packets {
			sum = append(sum, c.name)
		}
	}
	return strings.Join(sum, " + ")
}

// RHPMinutes calls fn for every minute stored from since on, in time
// order, with the bytes of the RHP classes (siamux and QUIC, both
// directions) all its rows hold: 0 for a minute the daemon counted with
// none. It stops at fn's first error and returns it. It reads minute rows
// only: retention bounds how far back it reaches.
func (s *Store) RHPMinutes(ctx context.Context, since time.Time, fn func(minute time.Time, bytes uint64) error) error {
	query := fmt.Sprintf("SELECT timestamp, SUM(%s) FROM %s WHERE timestamp >= ? GROUP BY timestamp ORDER BY timestamp",
		bytesOf(traffic.Siamux, traffic.QUIC), Minutes)
	return s.eachMinute(ctx, "RHP minutes", query, since, func(rows *sql.Rows) error {
		var at, bytes int64
		if err := rows.Scan(&at, &bytes); err != nil {
			return err
		}
		if err := fn(time.Unix(at, 0), uint64(bytes)); err != nil {
			return callerError{err}
		}
		return nil
	})
}
