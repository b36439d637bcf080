package pgsync

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A host's id is claimed by one local database at a time. Every batch
// that sends rows writes a new random claim to collector_hosts, and the
// local database keeps the claims it wrote; a batch finds the current
// claim among its own or is refused. A fingerprint of the machine could
// not do this: cloned VMs share /etc/machine-id, and when the clone was
// made from a running host, its database too, with any id kept in it.
// Claims tell the clones apart from the first rows either sends after
// the copy: the one that sends first claims anew, and the other no longer
// finds the claim among its own. The same holds for two machines given
// the same HOST_ID.

// Keys of the local sync state (store.SyncState).
const (
	stateCentral = "central" // the identity of the central database the cursors were made for
	stateClaims  = "claims"  // the claims this database wrote, oldest first, space-separated
	stateInstall = "install" // a random id of this database, to name it in a refusal
)

// keptClaims is how many of its latest claims a local database keeps: the
// last one committed, and those written since by batches that failed
// before or during their commit.
const keptClaims = 16

// errClaimed is a host id claimed by another machine.
var errClaimed = errors.New("is claimed by another machine")

// holder is the machine that claimed a host's id, as collector_hosts
// names it.
type holder struct {
	claim, install, hostname, address string
	syncedAt                          time.Time
}

// checkClaim returns errClaimed, naming both machines, when another
// machine holds this host's id; no claim at all is this host's to take.
func (s *Syncer) checkClaim(ctx context.Context, tx pgx.Tx) error {
	var h holder
	err := tx.QueryRow(ctx, `SELECT claim, install, hostname, coalesce(host(address), 'a unix socket'), synced_at
FROM collector_hosts WHERE host = $1`, s.host).Scan(&h.claim, &h.install, &h.hostname, &h.address, &h.syncedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the claim on host %s: %w", s.host, err)
	}
	mine, err := s.store.SyncState(ctx, s.target, stateClaims)
	if err != nil {
		return err
	}
	if h.claim == "" || slices.Contains(strings.Fields(mine), h.claim) {
		return nil
	}
	install, err := s.install(ctx)
	if err != nil {
		return err
	}
	var address string
	if err := tx.QueryRow(ctx, "SELECT coalesce(host(inet_client_addr()), 'a unix socket')").Scan(&address); err != nil {
		return fmt.Errorf("read this host's address: %w", err)
	}
	copied := ""
	if h.install == install {
		copied = " with a copy of that one's database (a cloned VM?)"
	}
	return fmt.Errorf("HOST_ID %q %w: %q (database %s, from %s, last synced %s); this is %q (database %s, from %s)%s: "+
		"give each machine its own HOST_ID, or, if this machine replaced that one, release the claim in PostgreSQL: "+
		"UPDATE collector_hosts SET claim = '' WHERE host = '%s'",
		s.host, errClaimed, h.hostname, h.install, h.address, h.syncedAt.UTC().Format(time.RFC3339),
		s.hostname, install, address, copied, strings.ReplaceAll(s.host, "'", "''"))
}

// claimSQL records that the host synced, its host name and where from,
// and, when $3 is not empty, the new claim of its id.
const claimSQL = `INSERT INTO collector_hosts (host, hostname, synced_at, claim, install, address)
VALUES ($1, $2, now(), $3, $4, inet_client_addr())
ON CONFLICT (host) DO UPDATE SET hostname = EXCLUDED.hostname, synced_at = EXCLUDED.synced_at,
	claim = CASE WHEN $3 = '' THEN collector_hosts.claim ELSE EXCLUDED.claim END,
	install = EXCLUDED.install, address = EXCLUDED.address`

// touchHost records, in tx, that the host synced, and when renew is set
// claims its id anew. The new claim is kept locally before tx commits, so
// that a crash between the two leaves the claim known.
func (s *Syncer) touchHost(ctx context.Context, tx pgx.Tx, renew bool) error {
	install, err := s.install(ctx)
	if err != nil {
		return err
	}
	claim := ""
	if renew {
		claim = rand.Text()
		mine, err := s.store.SyncState(ctx, s.target, stateClaims)
		if err != nil {
			return err
		}
		kept := append(strings.Fields(mine), claim)
		kept = kept[max(0, len(kept)-keptClaims):]
		if err := s.store.SaveSyncState(ctx, s.target, stateClaims, strings.Join(kept, " ")); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, claimSQL, s.host, s.hostname, claim, install); err != nil {
		return fmt.Errorf("update collector_hosts: %w", err)
	}
	return nil
}

// install returns the random id of the local database, made on first use.
func (s *Syncer) install(ctx context.Context) (string, error) {
	id, err := s.store.SyncState(ctx, s.target, stateInstall)
	if err != nil || id != "" {
		return id, err
	}
	id = rand.Text()[:12]
	return id, s.store.SaveSyncState(ctx, s.target, stateInstall, id)
}
