package labtest

import (
	"database/sql"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // registers the pure Go driver "sqlite"

	"github.com/back2basic/collector/traffic"
)

// AssertSame fails tb unless what the daemon stored per ip equals, client
// by client, what a capture counted of the same frames, and nothing is
// stored for an address that sent no Sia traffic.
func AssertSame(tb testing.TB, stored map[string]traffic.Traffic, counted map[netip.Addr]traffic.Traffic) {
	tb.Helper()
	for client, want := range counted {
		got, ok := stored[client.String()]
		if !ok {
			tb.Errorf("client %v: no rows, capture counted %+v", client, want)
			continue
		}
		for class := range traffic.NumClasses {
			for dir := range traffic.NumDirections {
				if g, w := got[class][dir], want[class][dir]; g != w {
					tb.Errorf("client %v %v %v: stored %d bytes / %d packets, the capture counted %d / %d",
						client, class, dir, g.Bytes, g.Packets, w.Bytes, w.Packets)
				}
			}
		}
	}
	for ip := range stored {
		if addr, err := netip.ParseAddr(ip); err != nil || counted[addr].IsZero() {
			tb.Errorf("stored ip %q that sent no Sia traffic", ip)
		}
	}
	if !tb.Failed() {
		tb.Logf("%d clients: stored traffic equals the frame count exactly", len(counted))
	}
}

// Stored sums the traffic table of the database at path per ip, with the
// column names users query, not through the package that wrote it.
func Stored(tb testing.TB, path string) map[string]traffic.Traffic {
	tb.Helper()
	var cols []string
	for class := range traffic.NumClasses {
		for dir := range traffic.NumDirections {
			name := fmt.Sprintf("%v_%v", class, dir)
			cols = append(cols, fmt.Sprintf("SUM(%s), SUM(%s_packets)", name, name))
		}
	}
	db := OpenDB(tb, path)
	rows, err := db.Query("SELECT ip, " + strings.Join(cols, ", ") + " FROM traffic GROUP BY ip")
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]traffic.Traffic{}
	for rows.Next() {
		var ip string
		var tr traffic.Traffic
		dest := []any{&ip}
		for class := range tr {
			for dir := range tr[class] {
				dest = append(dest, &tr[class][dir].Bytes, &tr[class][dir].Packets)
			}
		}
		if err := rows.Scan(dest...); err != nil {
			tb.Fatal(err)
		}
		out[ip] = tr
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// OpenDB opens the database at path read-only, as a user would beside the
// daemon, until tb ends.
func OpenDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
