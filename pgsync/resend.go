package pgsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/store"
)

// The local cursors say how far the central database has this host's
// rows; checkCentral makes sure it still does before a sync sends more.
// A database dropped and created again has another identity than the one
// the cursors were made for. A database restored from an older dump has
// the old identity back, but with fewer rows: collector_sent, written
// with the rows, then says it holds them only up to a point short of the
// cursors. Either way the cursors go back to the start and every row
// within local retention is sent again; rows sent twice land once.

// errCentralBehind is a central database that lacks rows the sync cursor
// says it has.
var errCentralBehind = errors.New("restored from an older copy? the next sync sends the rows again")

// checkCentral resets the cursors and logs why when the central database
// is not the one they were made for, or is behind them. The claim of the
// restored database is then stale, so it is cleared for this host to
// claim anew.
func (s *Syncer) checkCentral(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) // a no-op once committed
	if err := s.lockHost(ctx, tx); err != nil {
		return err
	}
	var centralID string
	if err := tx.QueryRow(ctx, "SELECT central_id::text FROM collector_schema").Scan(&centralID); err != nil {
		return fmt.Errorf("read the central database's identity: %w", err)
	}
	why, err := s.resendReason(ctx, tx, centralID)
	if err != nil || why == "" {
		return err
	}
	// The local reset goes first: should the central commit fail, the
	// rows go again anyway, and collector_sent, short or missing, says
	// the same on the next try.
	if err := s.store.ResetSyncCursors(ctx, s.target); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM collector_sent WHERE host = $1", s.host); err != nil {
		return fmt.Errorf("reset collector_sent: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE collector_hosts SET claim = '' WHERE host = $1", s.host); err != nil {
		return fmt.Errorf("reset the claim on host %s: %w", s.host, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	if err := s.store.SaveSyncState(ctx, s.target, stateCentral, centralID); err != nil {
		return err
	}
	s.cfg.Log.Warn("sending every row within local retention again", "why", why, "to", s.where(), "host", s.host)
	return nil
}

// resendReason says why the central database lacks rows the cursors say
// it has, or returns "" when it does not.
func (s *Syncer) resendReason(ctx context.Context, tx pgx.Tx, centralID string) (string, error) {
	madeFor, err := s.store.SyncState(ctx, s.target, stateCentral)
	if err != nil {
		return "", err
	}
	if madeFor != centralID {
		if madeFor != "" {
			return fmt.Sprintf("the central database is another one than the sync cursor was made for (identity %s, the cursor's %s): dropped and created again?", centralID, madeFor), nil
		}
		// The first sync to this database, or the first since
		// identities were made: the cursors alone tell.
		if err := s.store.SaveSyncState(ctx, s.target, stateCentral, centralID); err != nil {
			return "", err
		}
	}
	for _, t := range s.tables {
		cursor, err := s.store.SyncCursor(ctx, s.target, t)
		if err != nil {
			return "", err
		}
		upTo, err := s.sentUpTo(ctx, tx, t)
		if err != nil {
			return "", err
		}
		if upTo.Compare(cursor) < 0 {
			return fmt.Sprintf("the central database holds %s of this host up to write %s, short of the sync cursor's %s: restored from an older copy?", t, upTo, cursor), nil
		}
	}
	return "", nil
}

// sentUpTo returns how far the central database holds this host's rows
// of t, in the local order of writes; the zero Mark when it holds none.
func (s *Syncer) sentUpTo(ctx context.Context, tx pgx.Tx, t store.Table) (store.Mark, error) {
	var spelled string
	err := tx.QueryRow(ctx, "SELECT up_to FROM collector_sent WHERE host = $1 AND tbl = $2", s.host, t.String()).Scan(&spelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Mark{}, nil
	}
	if err != nil {
		return store.Mark{}, fmt.Errorf("read collector_sent: %w", err)
	}
	return store.ParseMark(spelled)
}

// saveSentUpTo records in tx that the central database holds this host's
// rows of t up to m.
func (s *Syncer) saveSentUpTo(ctx context.Context, tx pgx.Tx, t store.Table, m store.Mark) error {
	_, err := tx.Exec(ctx, `INSERT INTO collector_sent (host, tbl, up_to) VALUES ($1, $2, $3)
ON CONFLICT (host, tbl) DO UPDATE SET up_to = EXCLUDED.up_to`, s.host, t.String(), m.String())
	if err != nil {
		return fmt.Errorf("update collector_sent: %w", err)
	}
	return nil
}
