package agg

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
)

// Past the cap, pending rows are merged, never dropped: after the outage
// every byte is stored, at the resolution the merging left.
func TestPendingCap(t *testing.T) {
	const limit = 20
	clients := func(n int) []bpfgo.Sample {
		s := make([]bpfgo.Sample, n)
		for i := range s {
			s[i] = bpfgo.Sample{Client: addrN(i), Traffic: traffic(uint64(i + 1))}
		}
		return s
	}
	tests := []struct {
		name   string
		rounds []time.Duration // after t0, when each round's period starts
		per    int             // clients a round
		log    string          // the error logged
		keeps  Period          // the resolution totals stay exact at
		rows   int             // pending rows after the last round
	}{
		{
			name:   "minutes into hours",
			rounds: []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute},
			per:    6, log: "merged each client's rows into one per hour", keeps: Hour, rows: 6 + 6,
		},
		{
			name:   "hours into days",
			rounds: []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour},
			per:    6, log: "merged each client's rows into one per day", keeps: Day, rows: 6,
		},
		{
			name:   "smallest clients into other",
			rounds: []time.Duration{0},
			per:    25, log: "merged each client's rows into one per day and the smallest clients into 'other'", keeps: Day, rows: limit,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			var logs logBuffer
			clk := &clock{}
			in := &feed{}
			a := NewAggregator(in, st, Config{Log: newLogger(&logs), Now: clk.now, MaxPending: limit})
			var total bpfgo.Traffic
			unlock := lockStore(t, st)
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
					t.Fatal("flush to a locked file succeeded")
				}
				if len(a.pending) > limit {
					t.Fatalf("%d rows pending, cap %d", len(a.pending), limit)
				}
			}
			if got := len(a.pending); got != tt.rows {
				t.Errorf("%d rows pending, want %d", got, tt.rows)
			}
			if n := logs.count("level=ERROR", tt.log, fmt.Sprintf("max_rows=%d", limit)); n == 0 {
				t.Errorf("no error %q logged:\n%s", tt.log, logs.String())
			}
			if n := logs.count("level=WARN", "nears the cap"); n != 1 {
				t.Errorf("%d warnings near the cap, want 1:\n%s", n, logs.String())
			}

			unlock()
			if err := a.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			day := t0.Truncate(24 * time.Hour)
			got, err := st.Series(t.Context(), Query{Since: day, Until: day.Add(24 * time.Hour)}, tt.keeps, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			// Every round's traffic is in the hour or day it was counted
			// in: exact at the resolution kept.
			var round, stored bpfgo.Traffic
			for _, s := range clients(tt.per) {
				round.Add(&s.Traffic)
			}
			for _, b := range got {
				var want bpfgo.Traffic
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

// bound leaves alone what fits, and folds the smallest clients first.
func TestFoldSmallest(t *testing.T) {
	a := NewAggregator(nil, nil, Config{Log: discard, MaxPending: 2})
	day := t0.Truncate(24 * time.Hour).Unix()
	for i, seed := range []uint64{5, 1, 9, 3} {
		add(a.pending, rowKey{day, addrN(i)}, ptr(traffic(seed)))
	}
	rows, bytes := a.foldSmallest(2)
	folded := sum(1, 3, 5)
	if rows != 3 || bytes != folded.Bytes() {
		t.Errorf("folded %d rows, %d bytes", rows, bytes)
	}
	want := map[rowKey]bpfgo.Traffic{
		{day, addrN(2)}:     traffic(9),
		{day, netip.Addr{}}: sum(1, 3, 5),
	}
	if len(a.pending) != len(want) {
		t.Fatalf("pending %v", a.pending)
	}
	for k, w := range want {
		if got := a.pending[k]; got == nil || *got != w {
			t.Errorf("row %s = %v, want %v", k.ip(), got, w)
		}
	}
}

func ptr[T any](v T) *T { return &v }
