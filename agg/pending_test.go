package agg

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// clients returns a batch of n clients, the i-th with dbtest.Seeded(i+1).
func clients(n int) []traffic.Sample {
	s := make([]traffic.Sample, n)
	for i := range s {
		s[i] = traffic.Sample{Client: addrN(i), Traffic: dbtest.Seeded(uint64(i + 1))}
	}
	return s
}

// Past the cap, pending rows are merged, never dropped: after the outage
// every byte is stored, at the resolution the merging left.
func TestPendingCap(t *testing.T) {
	const limit = 20
	tests := []struct {
		name   string
		rounds []time.Duration // after t0, when each round's period starts
		per    int             // clients a round
		log    string          // the error logged
		keeps  store.Period    // the resolution totals stay exact at
		rows   int             // pending rows after the last round
	}{
		{
			name:   "minutes into hours",
			rounds: []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute},
			per:    6, log: "merged each client's rows into one per hour", keeps: store.Hour, rows: 6 + 6,
		},
		{
			name:   "hours into days",
			rounds: []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour},
			per:    6, log: "merged each client's rows into one per day", keeps: store.Day, rows: 6,
		},
		{
			name:   "smallest clients into other",
			rounds: []time.Duration{0},
			per:    25, log: "merged each client's rows into one per day and the smallest clients into 'other'", keeps: store.Day, rows: limit,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			clk := &clock{}
			st := openPath(t, path, store.Options{Now: clk.now})
			var logs logBuffer
			in := &feed{}
			a := NewAggregator(in, Config{Log: newLogger(&logs), Now: clk.now, MaxPending: limit}, st)
			q := a.queues[0]
			var total traffic.Traffic
			unblock := makeReadOnly(t, filepath.Dir(path))
			for _, at := range tt.rounds {
				clk.set(t0.Add(at))
				a.periodStart = clk.now()
				batch := clients(tt.per)
				for _, s := range batch {
					total.Add(&s.Traffic)
				}
				in.push(batch)
				clk.set(t0.Add(at + time.Minute))
				if err := a.Flush(t.Context()); err == nil {
					t.Fatal("flush to a read-only file succeeded")
				}
				if len(q.pending) > limit {
					t.Fatalf("%d rows pending, cap %d", len(q.pending), limit)
				}
			}
			if got := len(q.pending); got != tt.rows {
				t.Errorf("%d rows pending, want %d", got, tt.rows)
			}
			if n := logs.count("level=ERROR", "too much traffic waiting for "+st.String(), tt.log, fmt.Sprintf("max_rows=%d", limit)); n == 0 {
				t.Errorf("no error %q logged:\n%s", tt.log, logs.String())
			}
			if n := logs.count("level=WARN", "traffic waiting for "+st.String()+" nears the cap"); n != 1 {
				t.Errorf("%d warnings near the cap, want 1:\n%s", n, logs.String())
			}

			unblock()
			if err := a.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			day := t0.Truncate(24 * time.Hour)
			got, err := st.Series(t.Context(), store.Query{Since: day, Until: day.Add(24 * time.Hour)}, tt.keeps, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			// Every round's traffic is in the hour or day it was counted
			// in: exact at the resolution kept.
			var round, stored traffic.Traffic
			for _, s := range clients(tt.per) {
				round.Add(&s.Traffic)
			}
			for _, b := range got {
				var want traffic.Traffic
				for _, at := range tt.rounds {
					if at := t0.Add(at); !at.Before(b.Start) && at.Before(b.End) {
						want.Add(&round)
					}
				}
				if b.Traffic != want {
					t.Errorf("%v to %v holds %d bytes, want %d", b.Start, b.End, b.Traffic.Bytes(), want.Bytes())
				}
				stored.Add(&b.Traffic)
			}
			if stored != total {
				t.Errorf("stored %d bytes in all, counted %d", stored.Bytes(), total.Bytes())
			}
		})
	}
}

// Each consumer has a queue of its own: one that fails keeps its rows,
// merged once they pass the cap, and gets them all with the first period
// it takes again; one that fails for a shorter while keeps its rows as
// they came; one that works gets each period once, as it came, and is
// never held back or merged.
func TestPendingPerConsumer(t *testing.T) {
	const limit, per, rounds = 20, 6, 5
	down := errors.New("consumer down")
	early := &recorder{name: "early", fail: down} // fails from the first round
	late := &recorder{name: "late"}               // fails from the fourth
	working := &recorder{name: "working"}
	var logs logBuffer
	clk := &clock{t: t0}
	in := &feed{}
	a := NewAggregator(in, Config{Log: newLogger(&logs), Now: clk.now, MaxPending: limit}, early, late, working)
	want := make(map[rowKey]traffic.Traffic)
	for i := range rounds {
		if i == 3 {
			late.setFail(down)
		}
		batch := clients(per)
		in.push(batch)
		expect(want, clk.now(), batch)
		clk.set(clk.now().Add(time.Minute))
		if err := a.Flush(t.Context()); !errors.Is(err, down) {
			t.Fatalf("round %d: flush = %v, want the consumers' error", i, err)
		}
	}
	pending := func(r *recorder) int {
		for _, q := range a.queues {
			if q.consumer == r {
				return len(q.pending)
			}
		}
		t.Fatalf("no queue for %s", r)
		return 0
	}
	// Four rounds of six rows passed the cap of early's queue and were
	// merged into one row per client and hour; the fifth came after.
	if got := pending(early); got != per+per {
		t.Errorf("early has %d rows pending, want %d", got, per+per)
	}
	if got := pending(late); got != 2*per {
		t.Errorf("late has %d rows pending, want its two rounds unmerged, %d", got, 2*per)
	}
	if got := pending(working); got != 0 {
		t.Errorf("working has %d rows pending", got)
	}
	if n := logs.count("level=ERROR", "too much traffic waiting for early", "merged each client's rows into one per hour"); n != 1 {
		t.Errorf("%d merges logged for early, want 1:\n%s", n, logs.String())
	}
	if n := logs.count("nears the cap"); n != 1 || logs.count("nears the cap", "waiting for early") != 1 {
		t.Errorf("near the cap warnings, want early's alone:\n%s", logs.String())
	}
	if n := logs.count("late", "merged"); n != 0 {
		t.Errorf("late's rows were merged:\n%s", logs.String())
	}
	if got := len(working.periods()); got != rounds {
		t.Errorf("working took %d periods in %d flushes", got, rounds)
	}
	dbtest.CheckSame(t, "working", working.rows(), want)

	early.setFail(nil)
	late.setFail(nil)
	clk.set(clk.now().Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	dbtest.CheckSame(t, "late", late.rows(), want)
	if got := len(late.periods()); got != 4 {
		t.Errorf("late took %d periods, want its first three and one with the rest", got)
	}
	if p := late.periods()[3]; !p.Start.Equal(t0.Add(3*time.Minute)) || !p.End.Equal(clk.now()) {
		t.Errorf("late's catch-up period runs from %v to %v, want from when it failed to now", p.Start, p.End)
	}
	earlyWant := groupBy(want, time.Hour, t0, t0.Add(4*time.Minute))
	for k, tr := range groupBy(want, time.Minute, t0.Add(4*time.Minute), clk.now()) {
		earlyWant[k] = tr
	}
	dbtest.CheckSame(t, "early", early.rows(), earlyWant)
	if got := len(early.periods()); got != 1 {
		t.Errorf("early took %d periods, want one with everything", got)
	}
	for _, r := range []*recorder{early, late} {
		if n := logs.count("level=INFO", "handing traffic to "+r.name+" again"); n != 1 {
			t.Errorf("%d recoveries of %s logged, want 1:\n%s", n, r, logs.String())
		}
	}
	if n := logs.count("to working"); n != 0 {
		t.Errorf("working is logged as failing:\n%s", logs.String())
	}
}

// bound leaves alone what fits, and folds the smallest clients first.
func TestFoldSmallest(t *testing.T) {
	q := newQueue(&recorder{name: "folded"})
	day := t0.Truncate(24 * time.Hour).Unix()
	for i, seed := range []uint64{5, 1, 9, 3} {
		add(q.pending, rowKey{day, addrN(i)}, ptr(dbtest.Seeded(seed)))
	}
	rows, bytes := q.foldSmallest(2)
	folded := dbtest.Sum(1, 3, 5)
	if rows != 3 || bytes != folded.Bytes() {
		t.Errorf("folded %d rows, %d bytes", rows, bytes)
	}
	want := map[rowKey]traffic.Traffic{
		{day, addrN(2)}:      dbtest.Seeded(9),
		{day, traffic.Other}: dbtest.Sum(1, 3, 5),
	}
	if len(q.pending) != len(want) {
		t.Fatalf("pending %v", q.pending)
	}
	for k, w := range want {
		if got := q.pending[k]; got == nil || *got != w {
			t.Errorf("row %s = %v, want %v", k.client, got, w)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Past MaxPending, a proven client whose rows were all folded into
// 'other' is no longer handed as proven; one with rows still is.
func TestBoundForgetsFoldedProven(t *testing.T) {
	q := newQueue(&recorder{name: "folded"})
	day := t0.Truncate(24 * time.Hour)
	var p period
	for i, seed := range []uint64{5, 1, 9, 3} {
		p.rows = append(p.rows, traffic.Row{Start: day, Client: addrN(i), Traffic: dbtest.Seeded(seed)})
	}
	p.proven = []traffic.Client{addrN(1), addrN(2)} // the smallest and the busiest
	q.keep(p)
	q.bound(Config{Log: discard, MaxPending: 2})
	if want := map[traffic.Client]bool{addrN(2): true}; !maps.Equal(q.proven, want) {
		t.Errorf("proven %v, want %v", q.proven, want)
	}
}
