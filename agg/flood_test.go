package agg

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// seeds records what the Aggregator asks to keep room for.
type seeds struct{ last []netip.Addr }

func (s *seeds) Seed(clients []netip.Addr) { s.last = slices.Clone(clients) }

// TestSmallClientsFoldIntoOther: a client below MinClientBytes in a period
// is added to that minute's 'other' row, a client above it keeps its own,
// a client split over several samples is judged on its sum, and the
// stored total is exact.
func TestSmallClientsFoldIntoOther(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	in := &feed{}
	// dbtest.Seeded(1) is 6147 bytes, dbtest.Seeded(0) 147.
	a := NewAggregator(in, Config{Log: discard, Now: clk.now, MinClientBytes: 4096}, st)
	in.push([]traffic.Sample{
		sample("192.0.2.1", 1),        // big enough
		sample("192.0.2.2", 0),        // small
		sample("2001:db8::2", 0),      // small
		sample("192.0.2.3", 0),        // small alone, big with the next one
		sample("192.0.2.3", 1),        //
		overflow(2),                   // the kernel's overflow entry
		sample("::ffff:192.0.2.4", 0), // small, v4-mapped
	})
	clk.set(t0.Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := map[rowKey]traffic.Traffic{
		{t0.Unix(), traffic.ClientOf(netip.MustParseAddr("192.0.2.1"))}: dbtest.Seeded(1),
		{t0.Unix(), traffic.ClientOf(netip.MustParseAddr("192.0.2.3"))}: dbtest.Sum(0, 1),
		{t0.Unix(), traffic.Other}:                                      dbtest.Sum(0, 0, 0, 2),
	}
	checkRows(t, st, want)
}

// TestRecentClientsSeeded: clients with rows of their own are handed to
// the Seeder after each flush, latest first, bounded, and forgotten once
// they have had no row of their own for recentFor.
func TestRecentClientsSeeded(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	s := &seeds{}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now, MinClientBytes: 4096, Seeder: s, MaxSeeded: 2})
	flush := func(at time.Duration, samples ...traffic.Sample) {
		t.Helper()
		in.push(samples)
		clk.set(t0.Add(at))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	flush(time.Minute, sample("192.0.2.1", 1), sample("192.0.2.2", 0))
	if want := addrs("192.0.2.1"); !slices.Equal(s.last, want) {
		t.Fatalf("seeded %v, want %v (a client below the threshold is not)", s.last, want)
	}
	flush(2*time.Minute, sample("192.0.2.3", 1))
	flush(3*time.Minute, sample("192.0.2.4", 1)) // no room: the two known keep theirs
	if want := addrs("192.0.2.3", "192.0.2.1"); !slices.Equal(s.last, want) {
		t.Fatalf("seeded %v, want %v", s.last, want)
	}
	flush(time.Minute+recentFor+time.Second, sample("192.0.2.4", 1))
	if want := addrs("192.0.2.4", "192.0.2.3"); !slices.Equal(s.last, want) {
		t.Fatalf("seeded %v, want %v once 192.0.2.1 is no longer recent", s.last, want)
	}
}

// TestMapFullLoggedPerEpisode: a run of drains whose overflow entry
// counted something is one warning as it starts and one line as it ends.
func TestMapFullLoggedPerEpisode(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	var logs logBuffer
	a := NewAggregator(in, Config{Log: newLogger(&logs), Now: clk.now})
	for i, full := range []bool{false, true, true, true, false, false, true, false} {
		batch := []traffic.Sample{sample("192.0.2.1", 1)}
		if full {
			batch = append(batch, overflow(1))
		}
		in.push(batch)
		clk.set(t0.Add(time.Duration(i+1) * time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.count("level=WARN", "the counter map is full"); n != 2 {
		t.Errorf("%d warnings that the map is full, want 2:\n%s", n, logs.String())
	}
	// The first episode lasted three drains: three overflow(1)s.
	if n := logs.count("the counter map has room again", "full_for=3m0s", "other_bytes=18441"); n != 1 {
		t.Errorf("the end of the first episode is not logged with its length and bytes:\n%s", logs.String())
	}
	if n := logs.count("the counter map has room again"); n != 2 {
		t.Errorf("%d ends of an episode logged, want 2:\n%s", n, logs.String())
	}
}

// TestNamesPrunedWithRetention: a flush into the store drops a name not
// looked up again within the hourly retention; a fresher one stays.
func TestNamesPrunedWithRetention(t *testing.T) {
	now := t0.Add(30 * 24 * time.Hour)
	st := openPath(t, newPath(t), store.Options{
		Retention: store.Retention{Minutes: 24 * time.Hour, Hourly: 10 * 24 * time.Hour},
		Now:       func() time.Time { return now },
	})
	old, fresh := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	err := st.SaveNames(t.Context(), []traffic.Name{
		{Addr: old, DNS: "old.example", Found: now.Add(-11 * 24 * time.Hour)},
		{Addr: fresh, DNS: "fresh.example", Found: now.Add(-9 * 24 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: now.Add(-time.Minute)}
	in := &feed{}
	in.push([]traffic.Sample{sample(old.String(), 1), sample(fresh.String(), 2)})
	a := NewAggregator(in, Config{Log: discard, Now: clk.now}, st)
	clk.set(now)
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	clients, err := allClients(t.Context(), st, store.Query{Since: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[string]string)
	for _, c := range clients {
		names[c.Client.String()] = c.DNS
	}
	if want := map[string]string{old.String(): "", fresh.String(): "fresh.example"}; !maps.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}
