package datapath

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestFloodKeepsRealClients floods the daemon with 60,000 datagrams from
// as many forged addresses, far past MAX_CLIENTS, so that the counter map
// is full moments after each drain. The lab's clients had rows of their
// own before; during the flood they send one round each, whose first
// frame in its period comes after the map filled. They keep rows of their
// own, exact to the frame, because the map each period starts with is
// seeded with them; the forged addresses fit in the room left or go to
// 'other', and all of it adds up exactly. The map filling and emptying
// are each logged once.
//
// The row budget and MIN_CLIENT_BYTES are at their defaults: every client
// of a period gets its row, however small (the map holds 16 of them), so
// what is folded is what the kernel map had no room for.
func TestFloodKeepsRealClients(t *testing.T) {
	kerneltest.RequireRoot(t)
	const (
		maxClients = 16
		forged     = 60_000
		perSecond  = 20_000
	)
	// The flood goes to a second QUIC port where nothing listens, so it
	// does not drown the lab's QUIC server, which does not resend.
	ports := traffic.Ports{Consensus: []uint16{9981}, Siamux: []uint16{9984}, QUIC: []uint16{9984, 9985}}
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1s", "-live-interval", "1s",
		"-reverse-dns", "0", "-max-clients", "16", "-port-rhp4-quic", "9984,9985")
	capture := labtest.Capture(t, l, ports)
	round := func() {
		t.Helper()
		if _, err := l.Traffic(context.Background(), lab.Spec{Rounds: 1}); err != nil {
			t.Fatal(err)
		}
	}

	round()
	time.Sleep(1500 * time.Millisecond) // stored: the clients are recent now
	flood := make(chan error, 1)
	go func() { flood <- l.Forge(lab.Forged{Frames: forged, Port: 9985, Payload: 100, PerSecond: perSecond}) }()
	time.Sleep(1500 * time.Millisecond) // mid-period, mid-flood
	round()
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // periods without the flood: the map has room again
	counted, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	stored := labtest.Stored(t, db)
	real := map[netip.Addr]traffic.Traffic{}
	var forgedCounted, forgedStored traffic.Traffic
	for addr, tr := range counted {
		if slices.Contains(l.ClientAddrs, addr) {
			real[addr] = tr
		} else {
			forgedCounted.Add(&tr)
		}
	}
	if n := len(counted) - len(real); n != forged {
		t.Fatalf("the capture saw %d forged sources, want %d", n, forged)
	}
	forgedRows := 0
	for ip, tr := range stored {
		if addr, err := netip.ParseAddr(ip); err == nil && slices.Contains(l.ClientAddrs, addr) {
			continue
		}
		forgedStored.Add(&tr)
		forgedRows++
		delete(stored, ip)
	}
	labtest.AssertSame(t, stored, real)
	if forgedStored != forgedCounted {
		t.Errorf("forged traffic stored %+v, counted %+v", forgedStored, forgedCounted)
	}
	// About 5 flush periods of flood, each with room for 16 clients less
	// the 5 seeded, and 'other'.
	if forgedRows > 8*(maxClients-len(real))+1 {
		t.Errorf("%d forged addresses got rows of their own", forgedRows)
	}
	log := d.Output()
	if n := strings.Count(log, "the counter map is full"); n != 1 {
		t.Errorf("the map filling was logged %d times, want once:\n%s", n, log)
	}
	if n := strings.Count(log, "the counter map has room again"); n != 1 {
		t.Errorf("the map emptying was logged %d times, want once:\n%s", n, log)
	}
	t.Logf("%d forged frames, %d bytes: %d rows and 'other'; %d real clients exact", forged, forgedCounted.Bytes(), forgedRows-1, len(real))
}
