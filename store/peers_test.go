package store

import (
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/traffic"
)

// moved returns traffic of n bytes each way in each of classes.
func moved(n uint64, classes ...traffic.Class) traffic.Traffic {
	var t traffic.Traffic
	for _, c := range classes {
		for d := range traffic.NumDirections {
			t[c][d] = traffic.Tally{Bytes: n, Packets: 1}
		}
	}
	return t
}

// savePeers stores a sample of peers taken at at.
func savePeers(t testing.TB, st *Store, at int64, peers map[traffic.Client]Peering) {
	t.Helper()
	if err := st.SavePeers(t.Context(), time.Unix(at, 0), peers); err != nil {
		t.Fatal(err)
	}
}

// peerKey is a row of a peer table.
type peerKey struct {
	at int64
	ip string
}

// readPeers returns the rows of the peer table beside t.
func readPeers(t testing.TB, st *Store, table Table) map[peerKey]Peering {
	t.Helper()
	out := make(map[peerKey]Peering)
	dbtest.ScanPeers(t, st.db, peerTable(table), func(at int64, ip string, inbound, outbound bool) {
		out[peerKey{at, ip}] = Peering{Inbound: inbound, Outbound: outbound}
	})
	return out
}

var (
	renter     = clientOf("192.0.2.10")
	quicRenter = clientOf("2001:db8::10")
	stranger   = clientOf("192.0.2.20") // consensus bytes, never listed
	inPeer     = clientOf("192.0.2.30")
	bothPeer   = clientOf("2001:db8::30") // listed inbound, then outbound
	rentPeer   = clientOf("192.0.2.40")   // an outbound peer that rents too
	idlePeer   = clientOf("192.0.2.50")   // listed, moved nothing
)

// writeRoleHistory writes two minutes of traffic of a client of each role
// and the peer samples of those minutes.
func writeRoleHistory(t testing.TB, st *Store) {
	t.Helper()
	m0, m1 := t0.Unix(), t0.Unix()+60
	write(t, st, map[rowKey]traffic.Traffic{
		{m0, renter}:        moved(1000, traffic.Siamux),
		{m1, quicRenter}:    moved(900, traffic.QUIC),
		{m0, stranger}:      moved(10, traffic.Consensus),
		{m0, inPeer}:        moved(100, traffic.Consensus),
		{m1, inPeer}:        moved(100, traffic.Consensus),
		{m0, bothPeer}:      moved(200, traffic.Consensus),
		{m1, bothPeer}:      moved(200, traffic.Consensus),
		{m1, rentPeer}:      moved(300, traffic.Consensus, traffic.QUIC),
		{m0, traffic.Other}: moved(5, traffic.Consensus, traffic.Siamux),
	})
	savePeers(t, st, m0+30, map[traffic.Client]Peering{inPeer: {Inbound: true}, bothPeer: {Inbound: true}, idlePeer: {Outbound: true}})
	savePeers(t, st, m1+10, map[traffic.Client]Peering{inPeer: {Inbound: true}, bothPeer: {Outbound: true}, rentPeer: {Outbound: true}})
}

func TestRolesPerClient(t *testing.T) {
	st := openStore(t)
	writeRoleHistory(t, st)
	q := Query{Since: t0, Until: t0.Add(time.Hour)}
	clients, err := allClients(st, t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[traffic.Client]string)
	for _, c := range clients {
		got[c.Client] = c.Role
	}
	want := map[traffic.Client]string{
		renter:        "renter",
		quicRenter:    "renter",
		stranger:      "consensus",
		inPeer:        "peer-in+consensus",
		bothPeer:      "peer-in+peer-out+consensus",
		rentPeer:      "peer-out+consensus+renter",
		traffic.Other: "other",
	}
	if !maps.Equal(got, want) {
		t.Errorf("roles over the span %v, want %v", got, want)
	}
	for _, role := range want {
		if !slices.Contains(Roles(), role) {
			t.Errorf("role %q is not among Roles()", role)
		}
	}

	// One minute: the roles of that minute only.
	clients, err = allClients(st, t.Context(), Query{Since: t0, Until: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if c.Client == bothPeer && c.Role != "peer-in+consensus" {
			t.Errorf("the first minute's role of %s is %q, want peer-in+consensus", c.Client, c.Role)
		}
	}
}

func TestRolesFilterAndTotals(t *testing.T) {
	st := openStore(t)
	writeRoleHistory(t, st)
	q := Query{Since: t0, Until: t0.Add(time.Hour), Roles: []string{"renter", "consensus"}}
	top, err := st.TopClients(t.Context(), q, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Clients) != 1 || top.Clients[0].Client != renter || top.RestClients != 2 {
		t.Fatalf("top 1 of renters and strangers: %+v, want %s and 2 more", top, renter)
	}
	rest := moved(900, traffic.QUIC)
	strangerBytes := moved(10, traffic.Consensus)
	rest.Add(&strangerBytes)
	if top.Rest != rest {
		t.Errorf("the rest of the filtered clients %+v, want %+v", top.Rest, rest)
	}
	if _, err := st.TopPrefixes(t.Context(), q, 0, nil); err == nil {
		t.Error("a filter by role over prefixes was taken")
	}

	roles, err := st.TopRoles(t.Context(), Query{Since: t0, Until: t0.Add(time.Hour)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]RoleTotal)
	var order []string
	for _, r := range roles {
		got[r.Role] = r
		order = append(order, r.Role)
	}
	renters := moved(1000, traffic.Siamux)
	quic := moved(900, traffic.QUIC)
	renters.Add(&quic)
	if r := got["renter"]; r.Clients != 2 || r.Traffic != renters {
		t.Errorf("role renter: %d clients, %+v; want 2, %+v", r.Clients, r.Traffic, renters)
	}
	inPeerBytes := moved(100, traffic.Consensus)
	inPeerBytes.Add(&inPeerBytes)
	if r := got["peer-in+consensus"]; r.Clients != 1 || r.Traffic != inPeerBytes {
		t.Errorf("role peer-in+consensus: %+v, want 1 client, %+v", r, inPeerBytes)
	}
	if order[0] != "renter" || len(roles) != 6 {
		t.Errorf("roles %v, want 6, renter (the busiest) first", order)
	}
}

func TestRolesPerRow(t *testing.T) {
	st := openStore(t)
	writeRoleHistory(t, st)
	got := make(map[rowKey]string)
	if err := st.Rows(t.Context(), Minutes, Query{}, func(r *Row) error {
		got[rowKey{r.Start.Unix(), r.Client}] = r.Role
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m0, m1 := t0.Unix(), t0.Unix()+60
	want := map[rowKey]string{
		{m0, renter}: "renter", {m1, quicRenter}: "renter", {m0, stranger}: "consensus",
		{m0, inPeer}: "peer-in+consensus", {m1, inPeer}: "peer-in+consensus",
		{m0, bothPeer}: "peer-in+consensus", {m1, bothPeer}: "peer-out+consensus",
		{m1, rentPeer}: "peer-out+consensus+renter", {m0, traffic.Other}: "other",
	}
	if !maps.Equal(got, want) {
		t.Errorf("roles per minute row %v, want %v", got, want)
	}
}

// Peers are rolled up into hours and days as the traffic is, a peer of an
// hour being one of any of its samples, deleted as the traffic is, and a
// sample for an hour rolled up already goes into its rollups too.
func TestPeersRollupAndRetention(t *testing.T) {
	st := openStore(t)
	a, b := clientOf("192.0.2.1"), clientOf("2001:db8::1")
	keep := Retention{Minutes: 24 * time.Hour, Hourly: 3 * 24 * time.Hour}
	// A peer sample every five minutes for five days: a dials in each
	// time, b is dialled in the first sample of each hour and dials in
	// in the second. Every six hours a flush, and maintenance.
	truth := make(map[peerKey]Peering)
	for m := at(0, 0, 0); m < at(5, 0, 0); m += 300 {
		peers := map[traffic.Client]Peering{a: {Inbound: true}}
		switch m % 3600 {
		case 0:
			peers[b] = Peering{Outbound: true}
		case 300:
			peers[b] = Peering{Inbound: true}
		}
		savePeers(t, st, m+15, peers)
		for c, p := range peers {
			truth[peerKey{m, c.String()}] = p
		}
		if m%(6*3600) == 0 {
			write(t, st, map[rowKey]traffic.Traffic{{m, a}: moved(1, traffic.Consensus)})
			if err := st.maintain(t.Context(), time.Unix(m, 0), time.Unix(m, 0), keep, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := st.state
	if h.hourlyUntil != at(4, 18, 0) || h.dailyUntil != at(4, 0, 0) || h.minuteSince != at(3, 18, 0) || h.hourlySince != at(1, 0, 0) {
		t.Fatalf("rollup state %+v", h)
	}
	// want is what table must hold of [from, to): the samples of each of
	// its periods, each way.
	want := func(table Table, from, to int64) map[peerKey]Peering {
		out := make(map[peerKey]Peering)
		for k, p := range truth {
			if k.at < from || k.at >= to {
				continue
			}
			k.at = floorTo(k.at, table.step())
			sum := out[k]
			sum.Inbound, sum.Outbound = sum.Inbound || p.Inbound, sum.Outbound || p.Outbound
			out[k] = sum
		}
		return out
	}
	for _, c := range []struct {
		table    Table
		from, to int64
	}{{Days, 0, h.dailyUntil}, {Hours, h.hourlySince, h.hourlyUntil}, {Minutes, h.minuteSince, noEnd}} {
		if got, want := readPeers(t, st, c.table), want(c.table, c.from, c.to); !maps.Equal(got, want) {
			t.Errorf("%s holds %d rows, want %d", peerTable(c.table), len(got), len(want))
		}
	}
	if p := readPeers(t, st, Hours)[peerKey{at(2, 5, 0), b.String()}]; !p.Inbound || !p.Outbound {
		t.Errorf("b in an hour: %+v, want both ways", p)
	}

	// A sample that comes after its hour and day were rolled up.
	late := clientOf("192.0.2.99")
	savePeers(t, st, at(3, 10, 5), map[traffic.Client]Peering{late: {Outbound: true}})
	if p := readPeers(t, st, Hours)[peerKey{at(3, 10, 0), late.String()}]; !p.Outbound {
		t.Error("a late sample is missing from its hour")
	}
	if p := readPeers(t, st, Days)[peerKey{at(3, 0, 0), late.String()}]; !p.Outbound {
		t.Error("a late sample is missing from its day")
	}
}

// A version 8 file gets the peer tables and keeps its traffic.
func TestUpgradeAddsPeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	st := openPath(t, path)
	row := map[rowKey]traffic.Traffic{{t0.Unix(), renter}: moved(7, traffic.Siamux)}
	write(t, st, row)
	fresh := schemaOf(t, st.db)
	st.Close()
	var drop []string
	for tb := Minutes; tb <= Days; tb++ {
		drop = append(drop, "DROP TABLE "+peerTable(tb), "DROP TABLE "+HostdTableName(tb))
	}
	rawExec(t, path, append(drop, "PRAGMA user_version = 8")...)

	st = openPath(t, path)
	if got := schemaOf(t, st.db); !reflect.DeepEqual(got, fresh) {
		t.Errorf("upgraded schema:\n%v\nwant the one a new file gets:\n%v", got, fresh)
	}
	checkRows(t, st, row)
	savePeers(t, st, t0.Unix(), map[traffic.Client]Peering{renter: {Inbound: true}})
	if len(readPeers(t, st, Minutes)) != 1 {
		t.Error("the upgraded file does not keep peers")
	}
}
