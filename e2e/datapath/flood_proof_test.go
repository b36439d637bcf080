package datapath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestFloodLateRentersProveThemselves floods the daemon with 65,536 new
// forged sources a minute, each sending 3 full frames, while 20 real
// renters talk to it over TCP and QUIC, and two more start mid-flood: 22
// renters in all. The counter map (MAX_CLIENTS) is full moments after each
// drain, and a period has far more clients than the row budget
// (MAX_CLIENT_ROWS) allows.
//
// The 20 early renters had rows before the flood: they are seeded into
// every map, proven, keep their rows under the budget, and are stored
// exactly. The two late renters start only once the map is full, one over
// TCP and one over QUIC: the host's answers prove them real (TCP data;
// QUIC 1-RTT datagrams of full size), they get entries in the proven map,
// and from their proof on they are stored exactly (with what of theirs a
// CPU's cache of its last client still held then): at least 90% of their
// exchange of about 100 kB. The forged sources prove nothing: the busiest
// fill what the renters leave of the budget, the rest goes to 'other'. No
// flush writes more than the budget's client rows, and all of it adds up
// to the capture exactly.
//
// The late QUIC renter speaks QUIC-shaped datagrams, not QUIC: long
// headers for its handshake, then short-header (1-RTT) ones. The datapath
// reads only the first byte and the size.
func TestFloodLateRentersProveThemselves(t *testing.T) {
	kerneltest.RequireRoot(t)
	const (
		interval = 10 * time.Second
		// Renters before the flood and after it started (one TCP, one
		// QUIC).
		earlyRenters, lateRenters = 20, 2
		// A counter map of a few hundred, full within a second of each
		// drain, and a row budget below it that leaves room for the
		// renters and some forged sources.
		maxClients, maxClientRows = 256, 64
		// 65,536 sources a minute, 3 frames each.
		sourcesPerMinute = 65536
		framesPerSource  = 3
		payload          = 1452 // a full 1500-byte frame over IPv6, 1480 over IPv4
		floodPort        = 9985
		lateQUICPort     = 9986
		lateTCPPort      = 9987
		lateDown         = 500     // the late TCP renter's request
		lateUp           = 100_000 // and the host's answer
		lateDatagrams    = 80      // 1-RTT requests of the late QUIC renter, each answered in full
	)
	sources, rate := sourcesPerMinute, (sourcesPerMinute+59)/60
	if testing.Short() {
		// Under emulation (make test-kernels): a quarter of the rate
		// for a third of the time; the map still fills within a
		// second of each drain.
		sources, rate = sourcesPerMinute/12, rate/4
	}
	ports := traffic.Ports{Consensus: []uint16{9981}, Siamux: []uint16{9984, lateTCPPort}, QUIC: []uint16{9984, floodPort, lateQUICPort}}
	l := labtest.NewWith(t, lab.Options{Clients: earlyRenters + lateRenters})
	// The lab lists its IPv4 clients first: the late TCP renter is the
	// last IPv4 one, the late QUIC renter the last IPv6 one.
	v4 := (earlyRenters + lateRenters + 1) / 2
	lateTCP, lateQUIC := l.ClientAddrs[v4-1], l.ClientAddrs[len(l.ClientAddrs)-1]
	early := slices.Concat(l.ClientAddrs[:v4-1], l.ClientAddrs[v4:len(l.ClientAddrs)-1])

	db := filepath.Join(t.TempDir(), "collector.db")
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", interval.String(), "-live-interval", "1s",
		"-reverse-dns", "0", "-max-clients", fmt.Sprint(maxClients), "-min-client-bytes", "0", "-max-client-rows", fmt.Sprint(maxClientRows),
		"-port-rhp4-siamux", "9984,9987", "-port-rhp4-quic", "9984,9985,9986")
	capture := labtest.Capture(t, l, ports)
	// Every early renter talks TCP (consensus both ways, siamux) and
	// QUIC-shaped UDP each round; smaller streams than the lab's default
	// keep 20 of them light on an emulated guest.
	earlySpec := lab.Spec{Ports: traffic.Ports{Consensus: []uint16{9981}, Siamux: []uint16{9984}, QUIC: []uint16{9984}}, Clients: early,
		StreamDown: 2000, StreamUp: 6000}

	// The early renters get rows, and with them a seeded place in the
	// map from the second drain after.
	if _, err := l.Traffic(context.Background(), earlySpec); err != nil {
		t.Fatal(err)
	}
	sleepUntil(nextFlush(time.Now(), interval).Add(interval + 200*time.Millisecond))

	floodDone := make(chan error, framesPerSource)
	for range framesPerSource {
		go func() {
			floodDone <- l.Forge(lab.Forged{Frames: sources, Port: floodPort, Payload: payload, PerSecond: rate})
		}()
	}
	ctx, stopEarly := context.WithCancel(context.Background())
	earlyDone := make(chan error, 1)
	go func() {
		spec := earlySpec
		spec.Rounds, spec.Interval = lab.Forever, 2*time.Second
		sent, err := l.Traffic(ctx, spec)
		t.Logf("early renters: %d rounds, %d UDP requests sent again after a loss", sent.Rounds, sent.DatagramsResent)
		earlyDone <- err
	}()

	// The late renters start a second into a period whose map the flood
	// has filled, and finish within it: the datapath's proof lasts one
	// period.
	start := nextFlush(time.Now().Add(time.Second), interval).Add(time.Second)
	sleepUntil(start)
	var wg sync.WaitGroup
	lateErrs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		lateErrs <- lateTCPExchange(l, lateTCP, lateTCPPort, lateDown, lateUp)
	}()
	go func() {
		defer wg.Done()
		lateErrs <- lateQUICExchange(l, lateQUIC, lateQUICPort, lateDatagrams)
	}()
	wg.Wait()
	close(lateErrs)
	for err := range lateErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if end := start.Add(interval - time.Second - 500*time.Millisecond); time.Now().After(end) {
		t.Fatalf("the late renters took %v, past their flush period: the test cannot tell what they proved", time.Since(start))
	}

	for range framesPerSource {
		if err := <-floodDone; err != nil {
			t.Fatal(err)
		}
	}
	stopEarly()
	if err := <-earlyDone; err != nil {
		t.Fatal(err)
	}
	counted, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	fromProof := capture.FromProof()
	peakKiB, err := vmHWM(d.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	stored := labtest.Stored(t, db)
	var storedAll, countedAll traffic.Traffic
	for _, tr := range stored {
		storedAll.Add(&tr)
	}
	for _, tr := range counted {
		countedAll.Add(&tr)
	}
	if storedAll != countedAll {
		t.Errorf("all stored %+v, the capture counted %+v", storedAll, countedAll)
	}
	if n := len(counted) - len(early) - lateRenters; n != sources {
		t.Errorf("the capture saw %d forged sources, want %d", n, sources)
	}
	for _, addr := range early {
		if got, want := stored[addr.String()], counted[addr]; got != want {
			t.Errorf("early renter %v: stored %+v, the capture counted %+v", addr, got, want)
		}
	}
	for _, addr := range []netip.Addr{lateTCP, lateQUIC} {
		// From its proof on every frame is its own; of those before
		// it, the ones still in a CPU's cache of its last client when
		// it proved itself are too, the rest are in 'other'.
		got, all, want := stored[addr.String()], counted[addr], fromProof[addr]
		if !within(want, got, all) {
			t.Errorf("late renter %v: stored %+v, the capture counted %+v from its proof on and %+v in all", addr, got, want, all)
		}
		if got.Bytes() < all.Bytes()*9/10 {
			t.Errorf("late renter %v: %d of its %d bytes stored under its own address, want 90%% or more", addr, got.Bytes(), all.Bytes())
		}
		t.Logf("late renter %v: %d of %d bytes (%.1f%%) stored under its own address", addr, got.Bytes(), all.Bytes(), 100*float64(got.Bytes())/float64(all.Bytes()))
	}
	forgedRows := len(stored) - len(early) - lateRenters - 1 // 'other' too
	if forgedRows <= 0 || stored[traffic.Other.String()].IsZero() {
		t.Errorf("%d forged sources kept rows of their own, 'other' holds %d bytes: want the budget filled and the rest folded",
			forgedRows, stored[traffic.Other.String()].Bytes())
	}
	if !strings.Contains(d.Output(), "more clients in a flush period than MAX_CLIENT_ROWS") {
		t.Error("the daemon did not log that it folded clients into 'other'")
	}
	perMinute := mostRowsInAMinute(t, db)
	if flushes := int(time.Minute / interval); perMinute > maxClientRows*flushes {
		t.Errorf("a minute holds %d client rows: want at most MAX_CLIENT_ROWS=%d for each of its %d flush periods", perMinute, maxClientRows, flushes)
	}
	t.Logf("%d forged sources beside %d real renters (%d late), %d bytes in all: totals exact", sources, len(early)+lateRenters, lateRenters, countedAll.Bytes())
	t.Logf("row budget %d a flush period: at most %d client rows in one minute of %d flushes; %d forged sources kept rows, the rest folded into 'other'",
		maxClientRows, perMinute, time.Minute/interval, forgedRows)
	t.Logf("daemon peak RSS (VmHWM) %.1f MiB", float64(peakKiB)/1024)
}

// mostRowsInAMinute returns the most client rows (all but 'other') one
// minute of the minute table holds. A flush period's rows are not told
// apart in the file (the write log numbers times, not rows): the budget of
// each flush is checked in agg's tests, the sum of a minute's here.
func mostRowsInAMinute(tb testing.TB, db string) int {
	tb.Helper()
	var most int
	err := labtest.OpenDB(tb, db).QueryRow("SELECT COALESCE(MAX(n), 0) FROM (SELECT count(*) AS n FROM traffic_minute WHERE ip != 'other' GROUP BY timestamp)").Scan(&most)
	if err != nil {
		tb.Fatal(err)
	}
	return most
}

// nextFlush is the first flush after now: the daemon flushes on multiples
// of the interval.
func nextFlush(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// lateTCPExchange is a renter's request of down bytes and the host's
// answer of up bytes, over a new TCP connection from client to port.
func lateTCPExchange(l *lab.Lab, client netip.Addr, port uint16, down, up int) error {
	host := netip.AddrPortFrom(l.HostAddr(client), port)
	ln, err := l.ListenTCP(l.HostNS, host)
	if err != nil {
		return err
	}
	defer ln.Close()
	deadline := time.Now().Add(5 * time.Second)
	served := make(chan error, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		if err := readExactly(c, down); err != nil {
			served <- fmt.Errorf("host: %w", err)
			return
		}
		if _, err := c.Write(make([]byte, up)); err != nil {
			served <- err
			return
		}
		// The renter closes first, so the host's socket does not
		// linger in TIME_WAIT sending what the capture would miss.
		_, err = io.Copy(io.Discard, c)
		served <- err
	}()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c, err := l.DialTCP(ctx, l.ClientNS, netip.AddrPortFrom(client, 0), host)
	if err != nil {
		return err
	}
	c.SetDeadline(deadline)
	_, err = c.Write(make([]byte, down))
	if err == nil {
		err = readExactly(c, up)
	}
	err = errors.Join(err, c.Close(), <-served)
	// The last FIN and ACK cross the link within a round trip.
	time.Sleep(100 * time.Millisecond)
	if err != nil {
		return fmt.Errorf("late tcp renter %v: %w", client, err)
	}
	return nil
}

func readExactly(c *net.TCPConn, n int) error {
	_, err := io.ReadFull(c, make([]byte, n))
	return err
}

// QUIC-shaped first bytes: a long header (Initial) and a short one (1-RTT,
// the fixed bit set).
const (
	quicLongHeader  = 0xc3
	quicShortHeader = 0x41
)

// lateQUICExchange is a QUIC-shaped conversation of client with the host's
// port: two long-header round trips of full datagrams (the handshake),
// then n short-header requests of 60 bytes, each answered with a full
// short-header datagram. Every datagram waits for its answer, so none is
// lost to a full queue.
func lateQUICExchange(l *lab.Lab, client netip.Addr, port uint16, n int) error {
	const full = 1200 // a QUIC client's Initial is padded to this
	host := netip.AddrPortFrom(l.HostAddr(client), port)
	srv, err := l.ListenUDP(l.HostNS, host)
	if err != nil {
		return err
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			answer := make([]byte, full)
			answer[0] = quicShortHeader
			if buf[0]&0x80 != 0 {
				answer[0] = quicLongHeader
			}
			srv.WriteToUDPAddrPort(answer, from)
		}
	}()
	c, err := l.DialUDP(l.ClientNS, netip.AddrPortFrom(client, 0), host)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for i := range 2 + n {
		datagram := make([]byte, full)
		datagram[0] = quicLongHeader
		if i >= 2 {
			datagram = datagram[:60]
			datagram[0] = quicShortHeader
		}
		if _, err := c.Write(datagram); err != nil {
			return err
		}
		if got, err := c.Read(buf); err != nil || got != full {
			return fmt.Errorf("late quic renter %v: datagram %d: answer of %d bytes, %v", client, i, got, err)
		}
	}
	return nil
}

// within reports whether every tally of t lies between those of low and
// high, in bytes and frames.
func within(low, t, high traffic.Traffic) bool {
	for class := range t {
		for dir, v := range t[class] {
			l, h := low[class][dir], high[class][dir]
			if v.Bytes < l.Bytes || v.Bytes > h.Bytes || v.Packets < l.Packets || v.Packets > h.Packets {
				return false
			}
		}
	}
	return true
}
