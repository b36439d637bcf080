package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// syncStateSQL creates sync_state: what a copier keeps per target beside
// its cursors, by key (package pgsync: which central database the cursors
// were made for, and its claim on the host's id), and under the target
// onceTarget the ids WriteOnce wrote.
const syncStateSQL = `CREATE TABLE sync_state (
	target TEXT NOT NULL,
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (target, key)
) WITHOUT ROWID`

// addSyncState gives a version 4 file sync_state.
func addSyncState(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx, syncStateSQL)
}

// SyncState returns the value a copier saved for target under key, or ""
// when it saved none.
func (s *Store) SyncState(ctx context.Context, target, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT value FROM sync_state WHERE target = ? AND key = ?", target, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read sync state %s from %s: %w", key, s.path, err)
	}
	return v, nil
}

// SaveSyncState saves value for target under key.
func (s *Store) SaveSyncState(ctx context.Context, target, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sync_state (target, key, value) VALUES (?, ?, ?)
ON CONFLICT (target, key) DO UPDATE SET value = excluded.value`, target, key, value)
	if err != nil {
		return fmt.Errorf("save sync state %s in %s: %w", key, s.path, err)
	}
	return nil
}

// ResetSyncCursors moves every cursor of target back to the zero Mark, so
// that the copy gets every row of the tables' windows again. A copier
// that read its rows before the reset then cannot move a cursor on
// (SaveSyncCursor).
func (s *Store) ResetSyncCursors(ctx context.Context, target string) error {
	for _, t := range []Table{Minutes, Hours, Days} {
		_, err := s.db.ExecContext(ctx, `INSERT INTO sync_cursor (target, tbl, seq, timestamp, ip) VALUES (?, ?, 0, 0, '')
ON CONFLICT (target, tbl) DO UPDATE SET seq = 0, timestamp = 0, ip = ''`, target, t.String())
		if err != nil {
			return fmt.Errorf("reset sync cursor of %s in %s: %w", t, s.path, err)
		}
	}
	// hostd's tables are copied whole again too (HostdSyncCursor).
	if _, err := s.db.ExecContext(ctx, "DELETE FROM sync_cursor WHERE target = ? AND tbl IN (?, ?, ?)",
		target, HostdTableName(Minutes), HostdTableName(Hours), HostdTableName(Days)); err != nil {
		return fmt.Errorf("reset sync cursors of hostd's tables in %s: %w", s.path, err)
	}
	return nil
}

// String spells m as seq/timestamp/address, for ParseMark and for people.
func (m Mark) String() string { return fmt.Sprintf("%d/%d/%s", m.seq, m.at, m.ip) }

// ParseMark reads a Mark spelled by Mark.String.
func ParseMark(s string) (Mark, error) {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) != 3 {
		return Mark{}, fmt.Errorf("mark %q: want seq/timestamp/address", s)
	}
	seq, err1 := strconv.ParseInt(parts[0], 10, 64)
	at, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err := cmp.Or(err1, err2); err != nil {
		return Mark{}, fmt.Errorf("mark %q: %w", s, err)
	}
	return Mark{seq: seq, at: at, ip: parts[2]}, nil
}

// Compare orders marks as rows were written: -1 when m is before o, 0 when
// they are the same place, +1 when m is after o.
func (m Mark) Compare(o Mark) int {
	// strings.Compare orders by bytes, as SQLite's BINARY collation does.
	return cmp.Or(cmp.Compare(m.seq, o.seq), cmp.Compare(m.at, o.at), strings.Compare(m.ip, o.ip))
}
