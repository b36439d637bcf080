package pgsync

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/back2basic/collector/store"
)

// createHostd creates the central copies of the local hostd tables
// (store.HostdTableName), with the host in the key. Their columns mean
// what the local ones do; NULL where hostd had no figure.
func createHostd() []string {
	var stmts []string
	for _, t := range tables {
		stmts = append(stmts, fmt.Sprintf(`CREATE TABLE %s (
	host text NOT NULL,
	timestamp timestamptz NOT NULL,
	periods integer NOT NULL,
	rhp_ingress bigint NOT NULL,
	rhp_egress bigint NOT NULL,
	syncer_ingress bigint,
	syncer_egress bigint,
	paid_egress bigint,
	egress_price double precision NOT NULL,
	version text NOT NULL,
	quic boolean NOT NULL,
	PRIMARY KEY (host, timestamp)
)`, store.HostdTableName(t)))
	}
	return stmts
}

// upsertHostdSQL sets a central hostd row to the local values.
func upsertHostdSQL(t store.Table) string {
	return `INSERT INTO ` + store.HostdTableName(t) + ` (host, timestamp, periods, rhp_ingress, rhp_egress, syncer_ingress, syncer_egress, paid_egress, egress_price, version, quic)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (host, timestamp) DO UPDATE SET periods = EXCLUDED.periods, rhp_ingress = EXCLUDED.rhp_ingress, rhp_egress = EXCLUDED.rhp_egress,
	syncer_ingress = EXCLUDED.syncer_ingress, syncer_egress = EXCLUDED.syncer_egress, paid_egress = EXCLUDED.paid_egress,
	egress_price = EXCLUDED.egress_price, version = EXCLUDED.version, quic = EXCLUDED.quic`
}

// sendHostd sends the rows of hostd's tables written since their cursors
// in one central transaction, then moves the cursors. hostd's tables are
// small (288 rows a day), so there is no batching: a host's first sync of
// a year of hourly rows is about 9,000 statements in one round trip.
func (s *Syncer) sendHostd(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var (
		batch pgx.Batch
		from  [store.Days + 1]int64
		to    [store.Days + 1]int64
	)
	for _, t := range tables {
		var err error
		if from[t], err = s.store.HostdSyncCursor(ctx, s.target, t); err != nil {
			return err
		}
		rows, last, err := s.store.HostdChanges(ctx, t, from[t])
		if err != nil {
			return err
		}
		to[t] = last
		for _, r := range rows {
			var syncerIn, syncerOut, paid *int64
			if r.Syncer != nil {
				in, out := int64(r.Syncer.Ingress), int64(r.Syncer.Egress)
				syncerIn, syncerOut = &in, &out
			}
			if r.PaidEgress != nil {
				p := int64(*r.PaidEgress)
				paid = &p
			}
			batch.Queue(upsertHostdSQL(t), s.host, r.Start.UTC(), r.Periods, int64(r.RHP.Ingress), int64(r.RHP.Egress),
				syncerIn, syncerOut, paid, r.EgressPrice, r.Version, r.QUIC)
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) // a no-op once committed
	if err := s.lockHost(ctx, tx); err != nil {
		return err
	}
	if err := s.checkClaim(ctx, tx); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("send %d rows of hostd's tables: %w", batch.Len(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit %d rows of hostd's tables: %w", batch.Len(), err)
	}
	for _, t := range tables {
		if to[t] != from[t] {
			if err := s.store.SaveHostdSyncCursor(ctx, s.target, t, to[t]); err != nil {
				return err
			}
		}
	}
	return nil
}
