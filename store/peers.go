package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/traffic"
)

// hostd's syncer peers are kept per period beside the traffic, in tables of
// their own: peers_minute holds a row per client hostd listed in a sample
// of its peers taken in that minute, inbound and outbound saying how it
// listed it (an address may be both: the peer dialled the host and was
// dialled). peers_hourly and peers_daily hold a row per client listed in
// any sample of the hour or day. They are rolled up and deleted with the
// traffic, in the same transactions and as far, so that every time is
// answered by the peer table of the same resolution as the traffic's and a
// report reads both with one plan.

// peerTable returns the SQL name of the peer table beside the traffic
// table t.
func peerTable(t Table) string {
	return [...]string{"peers_minute", "peers_hourly", "peers_daily"}[t]
}

// createPeersSQL makes the peer tables.
func createPeersSQL() []string {
	var out []string
	for t := Minutes; t <= Days; t++ {
		out = append(out, `CREATE TABLE `+peerTable(t)+` (
	timestamp INTEGER NOT NULL,
	ip TEXT NOT NULL,
	inbound INTEGER NOT NULL,
	outbound INTEGER NOT NULL,
	PRIMARY KEY (timestamp, ip)
) WITHOUT ROWID`)
	}
	return out
}

// addPeers gives a version 8 file the peer tables.
func addPeers(ctx context.Context, tx *sql.Tx) error {
	return execAll(ctx, tx, createPeersSQL()...)
}

// Peering is how hostd listed a syncer peer: it dialled the host (Inbound),
// the host dialled it (Outbound), or both.
type Peering struct {
	Inbound, Outbound bool
}

// upsertPeerSQL records a peer in a period of table t: a peer is in a
// period when any sample of it listed the peer, each way.
func upsertPeerSQL(t Table) string {
	return `INSERT INTO ` + peerTable(t) + ` (timestamp, ip, inbound, outbound) VALUES (?, ?, ?, ?)
ON CONFLICT (timestamp, ip) DO UPDATE SET inbound = max(inbound, excluded.inbound), outbound = max(outbound, excluded.outbound)`
}

// SavePeers records peers, hostd's syncer peers as listed at time at, in
// the minute of at, and in its hour and day where those are rolled up
// already (a sample that took long, or the clock set back), so that the
// rollups always hold every peer of the minutes they stand for.
func (s *Store) SavePeers(ctx context.Context, at time.Time, peers map[traffic.Client]Peering) error {
	if len(peers) == 0 {
		return nil
	}
	clients := make([]traffic.Client, 0, len(peers))
	for c := range peers {
		clients = append(clients, c)
	}
	slices.SortFunc(clients, traffic.Client.Compare)
	s.mu.Lock()
	defer s.mu.Unlock()
	minute := floorTo(at.Unix(), Minutes.step())
	tables := []Table{Minutes}
	if minute < s.state.hourlyUntil {
		tables = append(tables, Hours)
	}
	if minute < s.state.dailyUntil {
		tables = append(tables, Days)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store %d syncer peers in %s: %w", len(peers), s.path, err)
	}
	defer tx.Rollback() // a no-op once committed
	for _, t := range tables {
		stmt, err := tx.PrepareContext(ctx, upsertPeerSQL(t))
		if err != nil {
			return fmt.Errorf("store syncer peers in %s: %w", s.path, err)
		}
		defer stmt.Close()
		for _, c := range clients {
			p := peers[c]
			if _, err := stmt.ExecContext(ctx, floorTo(minute, t.step()), c.String(), p.Inbound, p.Outbound); err != nil {
				return fmt.Errorf("store syncer peer %s in %s: %w", c, s.path, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store %d syncer peers in %s: %w", len(peers), s.path, err)
	}
	return nil
}

// maintainPeers rolls up and deletes the peers as far as maintainChunk
// took the traffic from cur to next, in its transaction tx.
func maintainPeers(ctx context.Context, tx *sql.Tx, cur, next horizons) error {
	if err := rollupPeers(ctx, tx, Hours, cur.hourlyUntil, next.hourlyUntil); err != nil {
		return err
	}
	if err := rollupPeers(ctx, tx, Days, cur.dailyUntil, next.dailyUntil); err != nil {
		return err
	}
	if err := prunePeers(ctx, tx, Minutes, cur.minuteSince, next.minuteSince); err != nil {
		return err
	}
	return prunePeers(ctx, tx, Hours, cur.hourlySince, next.hourlySince)
}

// rollupPeers records in t's peer table the peers of [from, to) of the
// finer one: a peer of a period is one of any of its parts, each way.
func rollupPeers(ctx context.Context, tx *sql.Tx, t Table, from, to int64) error {
	if from >= to {
		return nil
	}
	step := t.step()
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (timestamp, ip, inbound, outbound)
SELECT timestamp - timestamp %% %d, ip, MAX(inbound), MAX(outbound)
FROM %s WHERE timestamp >= ? AND timestamp < ?
GROUP BY timestamp - timestamp %% %d, ip
ON CONFLICT (timestamp, ip) DO UPDATE SET inbound = max(inbound, excluded.inbound), outbound = max(outbound, excluded.outbound)`,
		peerTable(t), step, peerTable(t-1), step), from, to)
	if err != nil {
		return fmt.Errorf("roll up %s from %d to %d: %w", peerTable(t), from, to, err)
	}
	return nil
}

// prunePeers deletes the rows of t's peer table before cut, where the
// traffic's since moved there.
func prunePeers(ctx context.Context, tx *sql.Tx, t Table, since, cut int64) error {
	if cut <= since {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+peerTable(t)+" WHERE timestamp < ?", cut); err != nil {
		return fmt.Errorf("delete rows of %s before %d: %w", peerTable(t), cut, err)
	}
	return nil
}

// The role of a client in a period says whether hostd listed it as a
// syncer peer and what it was seen doing: a set of tags joined by "+", in
// this order:
//
//	peer-in    hostd listed it as an inbound syncer peer (it dialled the host)
//	peer-out   hostd listed it as an outbound syncer peer (the host dialled it)
//	consensus  it moved consensus bytes
//	renter     it moved RHP bytes (siamux or QUIC)
//
// A renter is "renter", a syncer peer that dialled the host
// "peer-in+consensus"; "consensus" alone is syncer traffic from an address
// hostd did not list in any sample (a peer that came and went between
// samples, a failed handshake, a scanner). The clients counted together
// have the role "other".
const (
	RolePeerIn    = "peer-in"
	RolePeerOut   = "peer-out"
	RoleConsensus = "consensus"
	RoleRenter    = "renter"
	RoleOther     = "other"
)

// Roles returns every role a client can have, "other" last.
func Roles() []string {
	var out []string
	for _, peer := range []string{"", RolePeerIn, RolePeerOut, RolePeerIn + "+" + RolePeerOut} {
		for _, seen := range []string{RoleConsensus, RoleRenter, RoleConsensus + "+" + RoleRenter} {
			out = append(out, strings.TrimPrefix(peer+"+"+seen, "+"))
		}
	}
	return append(out, RoleOther)
}

// roleSQL returns the SQL of a client's role: ip is the SQL of its
// address, counter the format of one of its counters (every %s the
// column's name), and peerTags the SQL of its peer tags, each with a
// leading "+" (empty for none).
func roleSQL(ip, counter, peerTags string) string {
	moved := func(classes ...traffic.Class) string {
		var parts []string
		for _, c := range columns {
			if !c.packets && slices.Contains(classes, c.class) {
				parts = append(parts, strings.ReplaceAll(counter, "%s", c.name))
			}
		}
		return strings.Join(parts, " + ") + " > 0"
	}
	return fmt.Sprintf(`CASE WHEN %s = '%s' THEN '%s' ELSE substr(%s
	|| iif(%s, '+%s', '') || iif(%s, '+%s', ''), 2) END`,
		ip, traffic.Other, RoleOther, peerTags,
		moved(traffic.Consensus), RoleConsensus, moved(traffic.Siamux, traffic.QUIC), RoleRenter)
}

// peerTagsSQL returns the SQL of a client's peer tags from the SQL of its
// inbound and outbound flags, either NULL where it was no peer.
func peerTagsSQL(inbound, outbound string) string {
	return fmt.Sprintf("iif(coalesce(%s, 0), '+%s', '') || iif(coalesce(%s, 0), '+%s', '')", inbound, RolePeerIn, outbound, RolePeerOut)
}

// peerSums returns a CTE named peer_sums (without its WITH), a row per
// client (peer_ip, a name apart from the traffic's ip so that a subquery
// can tell them apart) listed as a peer anywhere in pieces, with whether
// it was listed inbound and outbound, and its arguments.
func peerSums(pieces []piece) (string, []any) {
	var selects []string
	var args []any
	for _, p := range pieces {
		selects = append(selects, fmt.Sprintf("SELECT ip, inbound, outbound FROM %s WHERE timestamp >= ? AND timestamp < ?", peerTable(p.table)))
		args = append(args, p.from, p.to)
	}
	if len(selects) == 0 {
		selects = append(selects, "SELECT ip, inbound, outbound FROM "+peerTable(Minutes)+" WHERE 0")
	}
	return fmt.Sprintf(`peer_sums AS (
SELECT ip AS peer_ip, MAX(inbound) AS inbound, MAX(outbound) AS outbound
FROM (%s)
GROUP BY ip)`, strings.Join(selects, "\nUNION ALL\n")), args
}

// RoleTotal is the traffic of the clients of one role over a span.
type RoleTotal struct {
	Role    string
	Clients int
	Traffic traffic.Traffic
}

// TopRoles sums the traffic over the query's span per role of its clients
// (each client's role over the whole span), the busiest role first by the
// bytes of classes (all when empty); clients with no bytes in those
// classes are left out.
func (s *Store) TopRoles(ctx context.Context, q Query, classes []traffic.Class) ([]RoleTotal, error) {
	var out []RoleTotal
	err := s.read(ctx, func(tx *sql.Tx, h horizons) error {
		from, to := q.span()
		sums, args := keySums(plan(from, to, h), q, classes, byClient)
		var r RoleTotal
		query := fmt.Sprintf(`%s
SELECT role, count(*), %s FROM sums GROUP BY role ORDER BY SUM(rank) DESC, role`, sums, columnList("SUM(%s)", ", "))
		return scanTraffic(ctx, tx, query, args, []any{&r.Role, &r.Clients}, func(t *traffic.Traffic) error {
			r.Traffic = *t
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read totals per role from %s: %w", s.path, err)
	}
	return out, nil
}
