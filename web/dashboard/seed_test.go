package dashboard_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// now is when the browser test looks at the dashboard: a Wednesday, so
// that the spans cross a week, a month and a billing period.
var now = time.Date(2026, 3, 18, 14, 30, 0, 0, time.UTC)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// moved is traffic of one class: bytes down (client to host) and up.
func moved(class traffic.Class, down, up uint64) traffic.Traffic {
	var t traffic.Traffic
	t[class][traffic.Down] = traffic.Tally{Bytes: down, Packets: down/1500 + 1}
	t[class][traffic.Up] = traffic.Tally{Bytes: up, Packets: up/1500 + 1}
	return t
}

// seeded is a row the test writes: what client moved some time before
// now.
type seeded struct {
	ago     time.Duration
	client  string
	traffic traffic.Traffic
}

const day = 24 * time.Hour

// names are the reverse DNS names stored.
var names = map[string]string{"198.51.100.7": "renter-a.example", "2001:db8:1:2::42": "peer.example"}

// seeds are the stored traffic: each span of the charts (1d, 7d, 1m, 3m,
// 1y, all) holds rows the one before does not, none near a span's ends,
// and the older rows are left in the hourly and daily tables only (see
// seedStore), so that each span is read from the rollup that answers it.
func seeds() []seeded {
	rows := []seeded{
		{10 * time.Minute, "198.51.100.7", add(moved(traffic.Siamux, 40*mib, 700*mib), moved(traffic.QUIC, 5*mib, 90*mib))},
		{10 * time.Minute, "198.51.100.23", moved(traffic.Siamux, 9*mib, 300*mib)},
		{10 * time.Minute, "2001:db8:1:2::42", moved(traffic.Consensus, 12*mib, 10*mib)},
		{10 * time.Minute, "other", moved(traffic.QUIC, 20*kib, 10*kib)},
		{5 * time.Hour, "198.51.100.7", moved(traffic.Siamux, 100*mib, 1536*mib)},
		{5 * time.Hour, "2001:db8:1:ff::7", moved(traffic.Consensus, 3*mib, 2*mib)},
		{20 * time.Hour, "203.0.113.9", moved(traffic.QUIC, 5*mib, 50*mib)},
		{2 * day, "198.51.100.7", moved(traffic.QUIC, 200*mib, 2*gib)},
		{2 * day, "2001:db8:1:2::42", moved(traffic.Consensus, 12*mib, 10*mib)},
		{3 * day, "198.51.100.23", moved(traffic.Consensus, 20*mib, 20*mib)},
		{12 * day, "198.51.100.7", moved(traffic.Siamux, 300*mib, 3*gib)},
		{25 * day, "198.51.100.7", moved(traffic.Siamux, 400*mib, 4*gib)},
		{40 * day, "203.0.113.9", moved(traffic.QUIC, 50*mib, 500*mib)},
		{70 * day, "198.51.100.7", moved(traffic.QUIC, 500*mib, 5*gib)},
		{100 * day, "2001:db8:1:2::42", moved(traffic.Consensus, 120*mib, 100*mib)},
		{200 * day, "198.51.100.7", moved(traffic.Siamux, 600*mib, 6*gib)},
		{500 * day, "198.51.100.7", moved(traffic.Siamux, 700*mib, 7*gib)},
	}
	// More clients than the dashboard's top 20, in one /24, so that the
	// busiest table has a rest and the prefixes one busy row.
	for i := range 24 {
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		rows = append(rows, seeded{2 * time.Hour, addr.String(), moved(traffic.Siamux, uint64(i+1)*kib+17, uint64(i+1)*37*kib+101)})
	}
	return rows
}

// peerSample is a sample of hostd's syncer peers the test stores: who it
// listed some time before now, and how.
type peerSample struct {
	ago    time.Duration
	client string
	how    store.Peering
}

// peerSamples make the peer of the seeds an inbound peer today and an
// outbound one two days ago, when the busiest renter was dialled too.
var peerSamples = []peerSample{
	{10 * time.Minute, "2001:db8:1:2::42", store.Peering{Inbound: true}},
	{2 * day, "2001:db8:1:2::42", store.Peering{Outbound: true}},
	{2 * day, "198.51.100.7", store.Peering{Outbound: true}},
}

func add(a, b traffic.Traffic) traffic.Traffic {
	a.Add(&b)
	return a
}

// seedStore writes seeds to a new database as the daemon would, in one
// closed period ending now, with retention short enough that rows older
// than two days remain in the hourly table only and rows older than
// twenty days in the daily one.
func seedStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "collector.db"), store.Options{
		Now:       func() time.Time { return now },
		Retention: store.Retention{Minutes: 2 * day, Hourly: 20 * day},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var rows []traffic.Row
	for _, s := range seeds() {
		client, err := traffic.ParseClient(s.client)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, traffic.Row{Start: now.Add(-s.ago).Truncate(time.Minute), Client: client, Traffic: s.traffic})
	}
	ctx := context.Background()
	if err := st.Consume(ctx, traffic.Period{Start: now.Add(-time.Minute), End: now, Rows: rows}); err != nil {
		t.Fatal(err)
	}
	var found []traffic.Name
	for ip, dns := range names {
		found = append(found, traffic.Name{Addr: netip.MustParseAddr(ip), DNS: dns, Found: now})
	}
	if err := st.SaveNames(ctx, found); err != nil {
		t.Fatal(err)
	}
	for _, p := range peerSamples {
		if err := st.SavePeers(ctx, now.Add(-p.ago), map[traffic.Client]store.Peering{traffic.ClientOf(netip.MustParseAddr(p.client)): p.how}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// liveSince is when the open flush period of the live view began.
var liveSince = now.Add(-40 * time.Second)

// liveSamples are what the kernel counted since liveSince, as the daemon's
// Live would return them; the client with nothing is left out of the
// table.
var liveSamples = []traffic.Sample{
	{Client: traffic.ClientOf(netip.MustParseAddr("198.51.100.7")), Traffic: moved(traffic.Siamux, 1*mib, 12*mib)},
	{Client: traffic.ClientOf(netip.MustParseAddr("2001:db8:1:2::42")), Traffic: moved(traffic.Consensus, 300*kib, 200*kib)},
	{Client: traffic.Other, Traffic: moved(traffic.QUIC, 3000, 1000)},
	{Client: traffic.ClientOf(netip.MustParseAddr("203.0.113.9"))},
}

// sums are the bytes of the seeds the filter keeps, per key (a client, a
// prefix, or "total").
type sums map[string]traffic.Traffic

// sumSeeds adds up the seeds from since on that keep keeps, keyed by key.
func sumSeeds(since time.Time, keep func(seeded) bool, key func(seeded) string) sums {
	out := sums{}
	for _, s := range seeds() {
		if now.Add(-s.ago).Before(since) || !keep(s) {
			continue
		}
		for _, k := range []string{key(s), "total"} {
			t := out[k]
			t.Add(&s.traffic)
			out[k] = t
		}
	}
	return out
}

// roleSince is client's role from since on, as the README defines it,
// from the seeds and the peer samples.
func roleSince(since time.Time, client string) string {
	if client == traffic.Other.String() {
		return "other"
	}
	var how store.Peering
	for _, p := range peerSamples {
		if p.client == client && !now.Add(-p.ago).Before(since) {
			how.Inbound, how.Outbound = how.Inbound || p.how.Inbound, how.Outbound || p.how.Outbound
		}
	}
	t := sumSeeds(since, only(client), byClient)[client]
	var tags []string
	for _, tag := range []struct {
		name string
		has  bool
	}{
		{"peer-in", how.Inbound},
		{"peer-out", how.Outbound},
		{"consensus", t[traffic.Consensus][traffic.Up].Bytes+t[traffic.Consensus][traffic.Down].Bytes > 0},
		{"renter", t[traffic.Siamux][traffic.Up].Bytes+t[traffic.Siamux][traffic.Down].Bytes+t[traffic.QUIC][traffic.Up].Bytes+t[traffic.QUIC][traffic.Down].Bytes > 0},
	} {
		if tag.has {
			tags = append(tags, tag.name)
		}
	}
	return strings.Join(tags, "+")
}

func every(seeded) bool { return true }

// only keeps the seeds of client.
func only(client string) func(seeded) bool {
	return func(s seeded) bool { return s.client == client }
}

func byClient(s seeded) string { return s.client }

// byPrefix is the network a client is grouped in: its IPv4 /24 or IPv6
// /48.
func byPrefix(s seeded) string {
	addr, err := netip.ParseAddr(s.client)
	if err != nil {
		return s.client // other
	}
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(addr, bits).Masked().String()
}
