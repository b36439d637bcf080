package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/back2basic/collector/traffic"
)

// onceTarget is the sync_state target under which WriteOnce records the
// ids of what it wrote. No copier has that name: each is named by its
// database's address.
const onceTarget = "write once"

// WriteOnce adds rows as Write does and records id in the same
// transaction; rows under an id recorded before are not added again. It
// reports whether it added them. A caller that cannot remove the source
// of rows in the same transaction (the daemon carrying over pinned maps
// of an earlier layout) can so hand them again after a crash without
// counting them twice.
func (s *Store) WriteOnce(ctx context.Context, id string, rows []traffic.Row, proven []traffic.Client) (added bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One writer holds the file (daemon's lock) and s.mu is held: nothing
	// can record id between this read and the write.
	var done string
	err = s.db.QueryRowContext(ctx, "SELECT value FROM sync_state WHERE target = ? AND key = ?", onceTarget, id).Scan(&done)
	if err == nil {
		return false, nil // written by an earlier call
	}
	if errors.Is(err, sql.ErrNoRows) {
		err = s.inWrite(ctx, func(tx *sql.Tx, seq int64) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO sync_state (target, key, value) VALUES (?, ?, ?)", onceTarget, id, "written")
			if err != nil {
				return err
			}
			return s.addRows(ctx, tx, seq, rows, proven)
		})
	}
	if err != nil {
		return false, fmt.Errorf("write %d rows of %s to %s: %w", len(rows), id, s.path, err)
	}
	return true, nil
}
