package main

import (
	"context"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/back2basic/collector/internal/kerneltest"
	"github.com/back2basic/collector/internal/labtest"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestRowBudgetUnderFlood floods the daemon with forged sources of one
// frame each while the lab's clients run a round, with a MAX_CLIENT_ROWS
// far below the sources of a flush period. The real clients keep exact
// rows of their own (each of their frames outweighs a forged one, so they
// rank first even unproven), no flush period stores more client rows than
// the budget, the forged traffic is exact in total, and the budget folding
// is logged once as it starts.
func TestRowBudgetUnderFlood(t *testing.T) {
	kerneltest.RequireRoot(t)
	const (
		budget    = 8
		forged    = 3000
		perSecond = 1000
	)
	// The flood goes to a second QUIC port where nothing listens, so it
	// does not drown the lab's QUIC server.
	ports := traffic.Ports{Consensus: []uint16{9981}, Siamux: []uint16{9984}, QUIC: []uint16{9984, 9985}}
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	// The flush interval is a minute, so each minute row is one flush
	// period's; the daemon's stop flushes the last one.
	d := startDaemon(t, l, "-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0",
		"-reverse-dns", "0", "-max-client-rows", strconv.Itoa(budget), "-port-rhp4-quic", "9984,9985")
	capture, err := l.Capture(ports)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { capture.Stop() })
	flood := make(chan error, 1)
	// Bare datagrams, 42 bytes over IPv4 and 62 over IPv6: less than any
	// frame of a TCP or QUIC exchange.
	go func() {
		flood <- l.Forge(lab.Forged{Frames: forged, Port: 9985, Payload: 0, PerSecond: perSecond})
	}()
	if _, err := l.Traffic(context.Background(), lab.Spec{Rounds: 1}); err != nil {
		t.Fatal(err)
	}
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	counted, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	stored := storedTraffic(t, db)
	real := map[netip.Addr]traffic.Traffic{}
	var forgedCounted, forgedStored traffic.Traffic
	for addr, tr := range counted {
		if isLabClient(l, addr) {
			real[addr] = tr
		} else {
			forgedCounted.Add(&tr)
		}
	}
	for ip, tr := range stored {
		if addr, err := netip.ParseAddr(ip); err == nil && isLabClient(l, addr) {
			continue
		}
		forgedStored.Add(&tr)
		delete(stored, ip)
	}
	assertSameTraffic(t, stored, real)
	if forgedStored != forgedCounted {
		t.Errorf("forged traffic stored %d bytes, counted %d", forgedStored.Bytes(), forgedCounted.Bytes())
	}
	var over int
	if err := openDB(t, db).QueryRow(`SELECT count(*) FROM (SELECT timestamp FROM traffic_minute WHERE ip != 'other'
		GROUP BY timestamp HAVING count(*) > ?)`, budget).Scan(&over); err != nil {
		t.Fatal(err)
	}
	if over > 0 {
		t.Errorf("%d minutes hold more than %d client rows", over, budget)
	}
	log := d.Output()
	if n := strings.Count(log, "more clients in a flush period than MAX_CLIENT_ROWS"); n != 1 {
		t.Errorf("the budget folding was logged %d times as it started, want once:\n%s", n, log)
	}
	t.Logf("%d forged sources, %d bytes, beside %d real clients exact", forged, forgedCounted.Bytes(), len(real))
}
