package datapath

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestRowBudgetUnderFlood: forged sources of one frame each, then a round
// of the lab's clients, all in one flush period, with a MAX_CLIENT_ROWS
// far below the sources. The real clients keep exact rows of their own
// (each of their frames outweighs a forged one, so they rank first even
// unproven), no minute stores more client rows than the budget, the
// forged traffic is exact in total, and the folding is logged once as it
// starts.
func TestRowBudgetUnderFlood(t *testing.T) {
	kerneltest.RequireRoot(t)
	const budget, forged = 8, 3000
	// Forged datagrams go to a QUIC port the lab's server does not use.
	const forgedPort = 9985
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0", "-reverse-dns", "0",
		"-max-client-rows", strconv.Itoa(budget), "-port-rhp4-quic", "9984,"+strconv.Itoa(forgedPort))
	capture := labtest.Capture(t, l, traffic.Ports{Consensus: []uint16{9981}, Siamux: []uint16{9984}, QUIC: []uint16{9984, forgedPort}})
	// Bare datagrams, 42 bytes over IPv4 and 62 over IPv6: less than any
	// frame of a TCP or QUIC exchange.
	if err := l.Forge(lab.Forged{Frames: forged, Port: forgedPort, PerSecond: 10_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Traffic(context.Background(), lab.Spec{Rounds: 1}); err != nil {
		t.Fatal(err)
	}
	counted, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	stored := labtest.Stored(t, db)
	forgedCounted := takeForged(l, counted, netip.Addr.String)
	forgedStored := takeForged(l, stored, func(ip string) string { return ip })
	labtest.AssertSame(t, stored, counted)
	if forgedStored != forgedCounted || forgedCounted.Packets() != forged {
		t.Errorf("forged traffic stored %d bytes, counted %d bytes in %d frames (sent %d)",
			forgedStored.Bytes(), forgedCounted.Bytes(), forgedCounted.Packets(), forged)
	}
	var over int
	if err := labtest.OpenDB(t, db).QueryRow(`SELECT count(*) FROM (SELECT timestamp FROM traffic_minute WHERE ip != 'other'
		GROUP BY timestamp HAVING count(*) > ?)`, budget).Scan(&over); err != nil {
		t.Fatal(err)
	}
	if over > 0 {
		t.Errorf("%d minutes hold more than %d client rows", over, budget)
	}
	if n := strings.Count(d.Output(), "more clients in a flush period than MAX_CLIENT_ROWS"); n != 1 {
		t.Errorf("the budget folding was logged %d times as it started, want once:\n%s", n, d.Output())
	}
}

// takeForged removes from m every address that is not one of the lab's
// clients, and 'other', and returns what they moved. key gives the
// address of a key of m as text.
func takeForged[K comparable](l *lab.Lab, m map[K]traffic.Traffic, key func(K) string) traffic.Traffic {
	var sum traffic.Traffic
	for k, tr := range m {
		if addr, err := netip.ParseAddr(key(k)); err == nil && slices.Contains(l.ClientAddrs, addr) {
			continue
		}
		sum.Add(&tr)
		delete(m, k)
	}
	return sum
}
