package agg

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// proven is sample for a client that proved it is real in the period.
func proven(addr string, seed uint64) traffic.Sample {
	s := sample(addr, seed)
	s.Proven = true
	return s
}

// sumOf adds up the traffic of samples.
func sumOf(samples []traffic.Sample) traffic.Traffic {
	var t traffic.Traffic
	for _, s := range samples {
		t.Add(&s.Traffic)
	}
	return t
}

// flushOnce hands samples to a fresh Aggregator with cfg and returns the
// period its consumer took.
func flushOnce(t *testing.T, cfg Config, samples ...traffic.Sample) traffic.Period {
	t.Helper()
	clk := &clock{t: t0}
	in := &feed{}
	rec := &recorder{name: "recorder"}
	cfg.Log, cfg.Now = discard, clk.now
	a := NewAggregator(in, cfg, rec)
	in.push(samples)
	clk.set(t0.Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return rec.periods()[0]
}

// TestRowBudget: with no more clients than MaxClientRows every client has
// its own row; past it proven clients keep theirs first, then the busiest
// by bytes (a client split over samples on its sum), the rest is added to
// the minute's 'other' row with the overflow entry, and the total is
// exact.
func TestRowBudget(t *testing.T) {
	// dbtest.Seeded(n) moves 6000n+147 bytes.
	for _, tc := range []struct {
		name    string
		samples []traffic.Sample
		own     []string // the clients with rows of their own
		folded  []uint64 // the seeds added to 'other'
		proven  []string // Period.Proven
	}{
		{
			name:    "below",
			samples: []traffic.Sample{sample("192.0.2.1", 1), sample("2001:db8::1", 0)},
			own:     []string{"192.0.2.1", "2001:db8::1"},
		},
		{
			name:    "at",
			samples: []traffic.Sample{sample("192.0.2.1", 1), sample("192.0.2.2", 0), proven("192.0.2.3", 0)},
			own:     []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"},
			proven:  []string{"192.0.2.3"},
		},
		{
			name: "above",
			samples: []traffic.Sample{
				sample("192.0.2.1", 5),
				sample("192.0.2.2", 4), // folded: third busiest, two places left
				sample("192.0.2.3", 3), // folded
				proven("192.0.2.4", 0), // the smallest, but proven
				sample("192.0.2.5", 2), // 2+2: second busiest on its sum
				sample("192.0.2.5", 2),
				sample("192.0.2.6", 1), // folded
				overflow(7),
			},
			own:    []string{"192.0.2.4", "192.0.2.1", "192.0.2.5"},
			folded: []uint64{4, 3, 1, 7},
			proven: []string{"192.0.2.4"},
		},
		{
			name: "more proven than the budget",
			samples: []traffic.Sample{
				sample("192.0.2.1", 9), // busiest, not proven: folded
				proven("192.0.2.2", 1),
				proven("192.0.2.3", 3),
				proven("192.0.2.4", 2),
				proven("192.0.2.5", 0), // the smallest proven: folded
			},
			own:    []string{"192.0.2.3", "192.0.2.4", "192.0.2.2"},
			folded: []uint64{9, 0},
			proven: []string{"192.0.2.3", "192.0.2.4", "192.0.2.2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := flushOnce(t, Config{MaxClientRows: 3}, tc.samples...)
			want := make(map[rowKey]traffic.Traffic)
			for _, s := range tc.samples {
				if slices.Contains(tc.own, s.Client.String()) {
					addTo(want, rowKey{t0.Unix(), s.Client}, s.Traffic)
				}
			}
			if len(tc.folded) > 0 {
				want[rowKey{t0.Unix(), traffic.Other}] = dbtest.Sum(tc.folded...)
			}
			if got := keyed(p.Rows); !maps.Equal(got, want) {
				t.Errorf("rows %v, want %v", got, want)
			}
			var total traffic.Traffic
			for _, r := range p.Rows {
				total.Add(&r.Traffic)
			}
			if total != sumOf(tc.samples) {
				t.Errorf("the rows add up to %d bytes, the samples to %d", total.Bytes(), sumOf(tc.samples).Bytes())
			}
			var gotProven []string
			for _, c := range p.Proven {
				gotProven = append(gotProven, c.String())
			}
			if !sameSet(gotProven, tc.proven) {
				t.Errorf("Period.Proven %v, want %v", gotProven, tc.proven)
			}
		})
	}
}

// TestProvenRemembered: a client proven in an earlier period ranks first
// for provenFor after, without proving itself again, and only then is
// ranked by bytes again.
func TestProvenRemembered(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	rec := &recorder{name: "recorder"}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now, MaxClientRows: 1}, rec)
	flush := func(at time.Duration, samples ...traffic.Sample) traffic.Period {
		t.Helper()
		in.push(samples)
		clk.set(t0.Add(at))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		ps := rec.periods()
		return ps[len(ps)-1]
	}
	renter := "192.0.2.1"
	flush(time.Minute, proven(renter, 0))
	for _, tc := range []struct {
		at   time.Duration
		kept string
	}{
		{2 * time.Minute, renter},
		{time.Minute + provenFor, renter},
		{2*time.Minute + provenFor, "203.0.113.9"},
	} {
		p := flush(tc.at, sample(renter, 0), sample("203.0.113.9", 5))
		var own []string
		for _, r := range p.Rows {
			if !r.Client.IsOther() {
				own = append(own, r.Client.String())
			}
		}
		if !slices.Equal(own, []string{tc.kept}) {
			t.Errorf("%v after the proof: rows of their own for %v, want %s", tc.at-time.Minute, own, tc.kept)
		}
	}
}

// TestRowBudgetLoggedPerEpisode: a run of flushes that fold clients is one
// warning as it starts and one line as it ends, with what was folded in
// it; Stats counts every folded row and byte.
func TestRowBudgetLoggedPerEpisode(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	var logs logBuffer
	a := NewAggregator(in, Config{Log: newLogger(&logs), Now: clk.now, MaxClientRows: 1})
	for i, over := range []bool{false, true, true, false, true, false} {
		batch := []traffic.Sample{sample("192.0.2.1", 2)}
		if over {
			batch = append(batch, sample("192.0.2.2", 1))
		}
		in.push(batch)
		clk.set(t0.Add(time.Duration(i+1) * time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.count("level=WARN", "more clients in a flush period than MAX_CLIENT_ROWS", "folded_clients=1", "folded_bytes=6147"); n != 2 {
		t.Errorf("%d warnings that clients are folded, want 2:\n%s", n, logs.String())
	}
	// The first episode lasted two flushes, each folding Seeded(1).
	if n := logs.count("has a row of its own again", "folding_for=2m0s", "folded_clients=2", "folded_bytes=12294"); n != 1 {
		t.Errorf("the end of the first episode is not logged with its length, clients and bytes:\n%s", logs.String())
	}
	if n := logs.count("has a row of its own again"); n != 2 {
		t.Errorf("%d ends of an episode logged, want 2:\n%s", n, logs.String())
	}
	if s := a.Stats(); s.FoldedRows != 3 || s.FoldedBytes != 3*6147 {
		t.Errorf("Stats folded %d rows, %d bytes; want 3, %d", s.FoldedRows, s.FoldedBytes, 3*6147)
	}
}

// TestProvenSeededFirst: the Seeder gets the proven clients first, latest
// first, then the other clients with rows lately, latest first.
func TestProvenSeededFirst(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	s := &seeds{}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now, Seeder: s, MaxSeeded: 4})
	for i, batch := range [][]traffic.Sample{
		{proven("192.0.2.1", 0), sample("192.0.2.2", 9)},
		{sample("192.0.2.3", 9), proven("192.0.2.4", 0)},
	} {
		in.push(batch)
		clk.set(t0.Add(time.Duration(i+1) * time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var want []netip.Addr
	for _, s := range []string{"192.0.2.4", "192.0.2.1", "192.0.2.3", "192.0.2.2"} {
		want = append(want, netip.MustParseAddr(s))
	}
	if !slices.Equal(s.last, want) {
		t.Errorf("seeded %v, want %v: proven first, then the latest", s.last, want)
	}
}

// sameSet reports whether x and y hold the same strings, in any order.
func sameSet(x, y []string) bool {
	x, y = slices.Clone(x), slices.Clone(y)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// TestBudgetSameForEveryConsumer: the budget is applied before any
// consumer sees a period, so every consumer gets the same rows; a consumer
// that refused a period gets its proven clients with the rows later, so
// the store's hourly rollup still ranks them first.
func TestBudgetSameForEveryConsumer(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	st := openPath(t, newPath(t), store.Options{Now: clk.now, MaxClientRows: 1})
	db := &recorder{name: "database", next: st}
	other := &recorder{name: "other consumer"}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now, MaxClientRows: 1}, db, other)
	renter, forger := "192.0.2.1", "203.0.113.9"
	db.setFail(errors.New("database is locked"))
	for i, batch := range [][]traffic.Sample{
		{proven(renter, 0), sample(forger, 5)},
		{sample(forger, 5), sample("203.0.113.10", 1)},
		{sample(forger, 1)}, // closes the hour: the rollup runs
	} {
		in.push(batch)
		at := time.Duration(i+1) * time.Minute
		if i == 2 {
			at = time.Hour + time.Minute
		}
		clk.set(t0.Add(at))
		if err := a.Flush(t.Context()); err != nil && i > 0 {
			t.Fatal(err)
		}
		db.setFail(nil)
	}
	if got, want := db.rows(), other.rows(); !maps.Equal(got, want) {
		t.Errorf("the database took %v, the other consumer %v", got, want)
	}
	checkRows(t, st, other.rows())
	renterRow := rowKey{t0.Unix(), traffic.ClientOf(netip.MustParseAddr(renter))}
	if _, ok := other.rows()[renterRow]; !ok {
		t.Fatalf("the proven renter has no row of its own: %v", other.rows())
	}
	hourly := readRows(t, st, store.Hours)
	want := map[rowKey]traffic.Traffic{
		renterRow:                  {}, // filled below
		{t0.Unix(), traffic.Other}: {},
	}
	for k, tr := range other.rows() {
		if k.minute >= t0.Add(time.Hour).Unix() {
			continue
		}
		hk := rowKey{t0.Unix(), k.client}
		if k != renterRow {
			hk.client = traffic.Other
		}
		sum := want[hk]
		sum.Add(&tr)
		want[hk] = sum
	}
	if !maps.Equal(hourly, want) {
		t.Errorf("hourly rows %v, want %v: the renter proven in the refused period first, the rest in 'other'", hourly, want)
	}
}
