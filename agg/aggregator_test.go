package agg

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
)

// t0 is a minute boundary.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func TestNextFlush(t *testing.T) {
	tests := []struct {
		now      time.Time
		interval time.Duration
		want     time.Time
	}{
		{t0.Add(37 * time.Second), time.Minute, t0.Add(time.Minute)},
		{t0, time.Minute, t0.Add(time.Minute)},
		{t0.Add(time.Minute - time.Millisecond), time.Minute, t0.Add(time.Minute)},
		{t0.Add(10 * time.Second), 30 * time.Second, t0.Add(30 * time.Second)},
		{t0.Add(7 * time.Minute), 5 * time.Minute, t0.Add(10 * time.Minute)},
		{t0.In(time.FixedZone("UTC+5:30", 5*3600+1800)).Add(90 * time.Second), time.Minute, t0.Add(2 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.now.Format(time.TimeOnly+"Z07:00")+"/"+tt.interval.String(), func(t *testing.T) {
			if got := nextFlush(tt.now, tt.interval); !got.Equal(tt.want) {
				t.Errorf("nextFlush = %v, want %v", got, tt.want)
			}
		})
	}
}

func sample(addr string, seed uint64) bpfgo.Sample {
	return bpfgo.Sample{Client: netip.MustParseAddr(addr), Traffic: traffic(seed)}
}

func overflow(seed uint64) bpfgo.Sample {
	return bpfgo.Sample{Overflow: true, Traffic: traffic(seed)}
}

// expect adds samples to want as the aggregator should: under minute, by
// unmapped address, the overflow entry under the zero Addr, zeros left out.
func expect(want map[rowKey]bpfgo.Traffic, minute time.Time, samples []bpfgo.Sample) {
	for _, s := range samples {
		if s.Traffic.IsZero() {
			continue
		}
		k := rowKey{minute: minute.Unix()}
		if !s.Overflow {
			k.client = s.Client.Unmap()
		}
		r := want[k]
		r.Add(&s.Traffic)
		want[k] = r
	}
}

// Rows are filed under the minute their period started in, and several
// flushes in one minute add up.
func TestFlushSumsExactly(t *testing.T) {
	type round struct {
		at      time.Duration // after t0, when the flush happens
		samples []bpfgo.Sample
		minute  time.Duration // after t0, where the samples must land
	}
	rounds := []round{
		// Started at 10:00:37: the first period belongs to 10:00.
		{at: time.Minute + 2*time.Millisecond, minute: 0, samples: []bpfgo.Sample{
			sample("192.0.2.1", 1), sample("2001:db8::1", 2), overflow(3),
			{Client: netip.MustParseAddr("192.0.2.9")}, // zero: no row
		}},
		// 30 s flushes: both halves of 10:01 sum into one row per client.
		{at: 90 * time.Second, minute: time.Minute, samples: []bpfgo.Sample{
			sample("192.0.2.1", 4), sample("::ffff:192.0.2.2", 5), overflow(6),
		}},
		{at: 2 * time.Minute, minute: time.Minute, samples: []bpfgo.Sample{
			sample("192.0.2.1", 7), sample("192.0.2.2", 8), sample("2001:db8::1", 9),
		}},
		{at: 3 * time.Minute, minute: 2 * time.Minute, samples: []bpfgo.Sample{
			sample("2001:db8::1", 10), overflow(11),
		}},
		{at: 4 * time.Minute, minute: 3 * time.Minute, samples: nil},
	}
	st := openStore(t)
	clk := &clock{t: t0.Add(37 * time.Second)}
	in := &feed{}
	a := NewAggregator(in, st, Config{Log: discard, Now: clk.now})
	want := make(map[rowKey]bpfgo.Traffic)
	for _, r := range rounds {
		in.push(r.samples)
		clk.set(t0.Add(r.at))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		expect(want, t0.Add(r.minute), r.samples)
	}
	checkRows(t, st, want)
	if _, ok := want[rowKey{t0.Unix(), netip.MustParseAddr("192.0.2.9")}]; ok {
		t.Error("test bug: a zero sample was expected")
	}
}

// A failed drain takes nothing: the next one brings that period's packets,
// still under the period's start.
func TestFlushAfterDrainError(t *testing.T) {
	st := openStore(t)
	var logs logBuffer
	clk := &clock{t: t0}
	fail := true
	d := drainFunc(func() ([]bpfgo.Sample, error) {
		if fail {
			return nil, errors.New("map swap: bad file descriptor")
		}
		return []bpfgo.Sample{sample("192.0.2.1", 1)}, nil
	})
	a := NewAggregator(d, st, Config{Log: newLogger(&logs), Now: clk.now})
	clk.set(t0.Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatalf("flush with nothing drained: %v", err)
	}
	fail = false
	clk.set(t0.Add(2 * time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkRows(t, st, map[rowKey]bpfgo.Traffic{{t0.Unix(), netip.MustParseAddr("192.0.2.1")}: traffic(1)})
	if n := logs.count("level=WARN", "drain counters", "bad file descriptor"); n != 1 {
		t.Errorf("drain warnings = %d, want 1:\n%s", n, logs.String())
	}
}

// While the file cannot be written, rows pile up in memory merged; once it
// can, one flush writes them all, and the outage is logged once going in
// and once coming out.
func TestFlushKeepsRowsWhileUnwritable(t *testing.T) {
	tests := []struct {
		name  string
		block func(t testing.TB, st *Store) (unblock func())
		errs  []string // what the warning may say
	}{
		{name: "locked by another writer", block: lockStore, errs: []string{"database is locked"}},
		{
			name:  "read-only",
			block: func(t testing.TB, st *Store) func() { return makeReadOnly(t, filepath.Dir(st.path)) },
			// A read-only file is opened read-only; on a read-only
			// mount the WAL index cannot be created either.
			errs: []string{"attempt to write a readonly database", "unable to open database file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			var logs logBuffer
			clk := &clock{t: t0}
			in := &feed{}
			a := NewAggregator(in, st, Config{Log: newLogger(&logs), Now: clk.now})
			want := make(map[rowKey]bpfgo.Traffic)
			round := func(i int) error {
				t.Helper()
				batch := []bpfgo.Sample{sample("192.0.2.1", uint64(i)), sample("2001:db8::7", uint64(10+i)), overflow(uint64(20 + i))}
				in.push(batch)
				expect(want, clk.now().Truncate(time.Minute), batch)
				clk.set(clk.now().Add(time.Minute))
				return a.Flush(t.Context())
			}
			if err := round(0); err != nil {
				t.Fatal(err)
			}
			for outage := range 2 {
				unblock := tt.block(t, st)
				for i := range 3 {
					if err := round(i); err == nil {
						t.Fatalf("outage %d round %d: flush succeeded", outage, i)
					}
				}
				if len(a.pending) == 0 {
					t.Fatal("rows dropped after failed flushes")
				}
				unblock()
				if err := round(3); err != nil {
					t.Fatal(err)
				}
				if len(a.pending) != 0 {
					t.Errorf("%d rows still pending after a successful flush", len(a.pending))
				}
				checkRows(t, st, want)
				n := 0
				for _, e := range tt.errs {
					n += logs.count("level=WARN", "cannot store traffic", e)
				}
				if n != outage+1 {
					t.Errorf("after outage %d: %d warnings, want %d:\n%s", outage, n, outage+1, logs.String())
				}
				if n := logs.count("level=INFO", "storing traffic again"); n != outage+1 {
					t.Errorf("after outage %d: %d recoveries logged, want %d:\n%s", outage, n, outage+1, logs.String())
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Run("final flush writes the last partial period", func(t *testing.T) {
		st := openStore(t)
		clk := &clock{t: t0.Add(30 * time.Second)} // next boundary half a minute away
		in := &feed{}
		batch := []bpfgo.Sample{sample("192.0.2.1", 1), overflow(2)}
		in.push(batch)
		a := NewAggregator(in, st, Config{Log: discard, Now: clk.now})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		want := make(map[rowKey]bpfgo.Traffic)
		expect(want, t0, batch)
		checkRows(t, st, want)
	})

	t.Run("first flush at the next boundary of the clock", func(t *testing.T) {
		// A clock 50 ms before a minute boundary: the flush must come then,
		// not a minute after Run started.
		start := time.Now()
		boundary := start.Truncate(time.Minute).Add(time.Minute)
		offset := boundary.Sub(start) - 50*time.Millisecond
		now := func() time.Time { return time.Now().Add(offset) }
		drained := make(chan time.Time, 10)
		d := drainFunc(func() ([]bpfgo.Sample, error) {
			drained <- now()
			return nil, nil
		})
		a := NewAggregator(d, openStore(t), Config{Log: discard, Now: now})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		select {
		case at := <-drained:
			if at.Before(boundary) || at.After(boundary.Add(500*time.Millisecond)) {
				t.Errorf("drained at %v, want just after %v", at.Format(time.StampMilli), boundary.Format(time.StampMilli))
			}
		case <-time.After(2 * time.Second):
			t.Error("no flush at the boundary")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("flushes every interval", func(t *testing.T) {
		st := openStore(t)
		var (
			mu     sync.Mutex
			drains int
			fed    bpfgo.Traffic
		)
		d := drainFunc(func() ([]bpfgo.Sample, error) {
			mu.Lock()
			defer mu.Unlock()
			drains++
			s := sample("2001:db8::1", uint64(drains))
			fed.Add(&s.Traffic)
			return []bpfgo.Sample{s}, nil
		})
		a := NewAggregator(d, st, Config{Log: discard, Interval: 10 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatal(err)
		}
		// The last drain is the final flush's; the rest are rounds.
		if drains < 3 {
			t.Errorf("%d drains in 200 ms at a 10 ms interval", drains)
		}
		got, err := allClients(st, t.Context(), Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Traffic != fed {
			t.Errorf("stored %+v, want one client with %+v", got, fed)
		}
	})

	t.Run("abandons rows the file never takes", func(t *testing.T) {
		st := openStore(t)
		var logs logBuffer
		in := &feed{}
		in.push([]bpfgo.Sample{sample("192.0.2.1", 1), sample("192.0.2.2", 2)})
		a := NewAggregator(in, st, Config{Log: newLogger(&logs)})
		defer lockStore(t, st)()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		err := a.Run(ctx)
		if took := time.Since(start); took > finalFlushTimeout+time.Second {
			t.Errorf("shutdown took %v", took)
		}
		if err == nil || !strings.HasPrefix(err.Error(), "abandon 2 rows (") {
			t.Errorf("Run = %v, want an error abandoning 2 rows", err)
		}
		if n := logs.count("level=ERROR", "abandon", "rows=2"); n != 1 {
			t.Errorf("%d abandon lines logged, want 1:\n%s", n, logs.String())
		}
	})
}

// Names found in the background are stored once per address on a later
// flush, whatever rows they came with; the overflow entry is never looked
// up.
func TestNamesStored(t *testing.T) {
	st := openStore(t)
	release := make(chan struct{})
	var (
		mu     sync.Mutex
		looked []netip.Addr
	)
	lookup := func(ctx context.Context, addr netip.Addr) (string, error) {
		mu.Lock()
		looked = append(looked, addr)
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return strings.NewReplacer(".", "-", ":", "-").Replace(addr.String()) + ".example", nil
	}
	res := NewResolver(t.Context(), ResolverConfig{Lookup: lookup, Timeout: time.Minute})
	clk := &clock{t: t0}
	in := &feed{}
	a := NewAggregator(in, st, Config{Log: discard, Resolver: res, Now: clk.now})
	flush := func(samples ...bpfgo.Sample) {
		t.Helper()
		in.push(samples)
		clk.set(clk.now().Add(time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	flush(sample("192.0.2.1", 1), sample("2001:db8::2", 2), overflow(3)) // lookups held back
	checkNames(t, st, map[string]string{})
	close(release)
	eventually(t, "both lookups", func() bool {
		res.mu.Lock()
		defer res.mu.Unlock()
		return len(res.found) == 2
	})
	flush() // nothing drained: the names alone
	checkNames(t, st, map[string]string{"192.0.2.1": "192-0-2-1.example", "2001:db8::2": "2001-db8--2.example"})
	flush(sample("192.0.2.1", 4)) // known: not looked up again

	mu.Lock()
	defer mu.Unlock()
	if len(looked) != 2 {
		t.Errorf("looked up %v, want each client once and never the overflow entry", looked)
	}
}

// Flushes roll up the hours that closed and apply retention as they go,
// and reads give the same totals before and after.
func TestFlushRollsUp(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: t0}
	in := &feed{}
	a := NewAggregator(in, st, Config{Log: discard, Now: clk.now, Retention: Retention{Minutes: time.Hour, Hourly: 24 * time.Hour}})
	want := make(map[rowKey]bpfgo.Traffic)
	for i := range 130 { // 10:00 to 12:10
		batch := []bpfgo.Sample{sample("192.0.2.1", uint64(i)), overflow(uint64(i % 7))}
		in.push(batch)
		expect(want, clk.now(), batch)
		clk.set(clk.now().Add(time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	h := st.state
	if h.hourlyUntil != t0.Add(2*time.Hour).Unix() || h.minuteSince != t0.Add(time.Hour).Unix() {
		t.Errorf("rolled up to %v, minutes kept from %v; want 12:00 and 11:00", time.Unix(h.hourlyUntil, 0).UTC(), time.Unix(h.minuteSince, 0).UTC())
	}
	checkTable(t, st, Hours, groupBy(want, Hours, 0, h.hourlyUntil))
	checkRows(t, st, groupBy(want, Minutes, h.minuteSince, noEnd))
	got, err := allClients(st, t.Context(), Query{Since: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, total := range got {
		var w bpfgo.Traffic
		for k, tr := range want {
			if k.client == total.Client {
				w.Add(&tr)
			}
		}
		if total.Traffic != w {
			t.Errorf("%s: %d bytes, want %d", ipColumn(total.Client), total.Traffic.Bytes(), w.Bytes())
		}
	}
}
