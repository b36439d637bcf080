package agg

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
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
func expect(want map[rowKey]row, minute time.Time, samples []bpfgo.Sample) {
	for _, s := range samples {
		if s.Traffic.IsZero() {
			continue
		}
		k := rowKey{minute: minute.Unix()}
		if !s.Overflow {
			k.client = s.Client.Unmap()
		}
		r := want[k]
		r.traffic.Add(&s.Traffic)
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
	a := NewAggregator(in, st, slog.New(slog.DiscardHandler), time.Minute, nil, clk.now)
	want := make(map[rowKey]row)
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
	a := NewAggregator(d, st, newLogger(&logs), time.Minute, nil, clk.now)
	clk.set(t0.Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatalf("flush with nothing drained: %v", err)
	}
	fail = false
	clk.set(t0.Add(2 * time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkRows(t, st, map[rowKey]row{{t0.Unix(), netip.MustParseAddr("192.0.2.1")}: {traffic: traffic(1)}})
	if n := logs.count("level=WARN", "drain counters", "bad file descriptor"); n != 1 {
		t.Errorf("drain warnings = %d, want 1:\n%s", n, logs.buf.String())
	}
}

// While the file is locked, rows pile up in memory merged; once free, one
// flush writes them all, and the outage is logged once going in and once
// coming out.
func TestFlushKeepsRowsWhileLocked(t *testing.T) {
	st := openStore(t)
	var logs logBuffer
	clk := &clock{t: t0}
	in := &feed{}
	a := NewAggregator(in, st, newLogger(&logs), time.Minute, nil, clk.now)
	want := make(map[rowKey]row)
	round := func(i int) error {
		t.Helper()
		batch := []bpfgo.Sample{sample("192.0.2.1", uint64(i)), sample("2001:db8::7", uint64(10+i)), overflow(uint64(20 + i))}
		in.push(batch)
		expect(want, clk.now().Truncate(time.Minute), batch)
		clk.set(clk.now().Add(time.Minute))
		return a.Flush(t.Context())
	}

	for outage := range 2 {
		unlock := lockStore(t, st)
		for i := range 3 {
			if err := round(i); err == nil {
				t.Fatalf("outage %d round %d: flush to a locked file succeeded", outage, i)
			}
		}
		if len(a.pending) == 0 {
			t.Fatal("rows dropped after failed flushes")
		}
		unlock()
		if err := round(3); err != nil {
			t.Fatal(err)
		}
		if len(a.pending) != 0 {
			t.Errorf("%d rows still pending after a successful flush", len(a.pending))
		}
		checkRows(t, st, want)
		if n := logs.count("level=WARN", "cannot store traffic", "database is locked"); n != outage+1 {
			t.Errorf("after outage %d: %d warnings, want %d:\n%s", outage, n, outage+1, logs.buf.String())
		}
		if n := logs.count("level=INFO", "storing traffic again"); n != outage+1 {
			t.Errorf("after outage %d: %d recoveries logged, want %d:\n%s", outage, n, outage+1, logs.buf.String())
		}
	}
}

func TestRun(t *testing.T) {
	t.Run("final flush writes the last partial period", func(t *testing.T) {
		st := openStore(t)
		clk := &clock{t: t0.Add(30 * time.Second)} // next boundary half a minute away
		in := &feed{}
		batch := []bpfgo.Sample{sample("192.0.2.1", 1), overflow(2)}
		in.push(batch)
		a := NewAggregator(in, st, slog.New(slog.DiscardHandler), time.Minute, nil, clk.now)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		want := make(map[rowKey]row)
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
		a := NewAggregator(d, openStore(t), slog.New(slog.DiscardHandler), time.Minute, nil, now)
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
		a := NewAggregator(d, st, slog.New(slog.DiscardHandler), 10*time.Millisecond, nil, nil)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatal(err)
		}
		// The last drain is the final flush's; the rest are rounds.
		if drains < 3 {
			t.Errorf("%d drains in 200 ms at a 10 ms interval", drains)
		}
		got, err := st.TotalsSince(t.Context(), time.Unix(0, 0))
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
		a := NewAggregator(in, st, newLogger(&logs), time.Minute, nil, nil)
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
			t.Errorf("%d abandon lines logged, want 1:\n%s", n, logs.buf.String())
		}
	})
}

// Names that arrive after a client's rows were stored are filled in on the
// next flush; the overflow entry is never looked up.
func TestNamesFilledLater(t *testing.T) {
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
	a := NewAggregator(in, st, slog.New(slog.DiscardHandler), time.Minute, res, clk.now)
	a1, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::2")
	flush := func(samples ...bpfgo.Sample) {
		t.Helper()
		in.push(samples)
		clk.set(clk.now().Add(time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitName := func(addr netip.Addr) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); res.Name(addr) == ""; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no name for %s", addr)
			}
		}
	}

	flush(sample("192.0.2.1", 1), overflow(2)) // 10:00, lookup held back
	close(release)
	waitName(a1)
	flush(sample("2001:db8::2", 3)) // 10:01: fills 192.0.2.1 at 10:00
	waitName(b)
	flush(sample("192.0.2.1", 4)) // 10:02: named at once, fills 2001:db8::2

	checkRows(t, st, map[rowKey]row{
		{t0.Unix(), a1}:                      {dns: "192-0-2-1.example", traffic: traffic(1)},
		{t0.Unix(), netip.Addr{}}:            {traffic: traffic(2)},
		{t0.Add(time.Minute).Unix(), b}:      {dns: "2001-db8--2.example", traffic: traffic(3)},
		{t0.Add(2 * time.Minute).Unix(), a1}: {dns: "192-0-2-1.example", traffic: traffic(4)},
	})
	mu.Lock()
	defer mu.Unlock()
	for _, addr := range looked {
		if !addr.IsValid() {
			t.Error("the overflow entry was looked up")
		}
	}
	if len(a.unnamed) != 0 {
		t.Errorf("clients still waiting for a name: %v", a.unnamed)
	}
}

func BenchmarkFlush100kClients(b *testing.B) {
	const clients = 100_000
	samples := make([]bpfgo.Sample, clients)
	for i := range samples {
		samples[i] = bpfgo.Sample{Traffic: traffic(uint64(i))}
		if i%2 == 0 {
			samples[i].Client = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			samples[i].Client = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		}
	}
	st := openStore(b)
	clk := &clock{t: t0}
	d := drainFunc(func() ([]bpfgo.Sample, error) { return samples, nil })
	a := NewAggregator(d, st, slog.New(slog.DiscardHandler), time.Minute, nil, clk.now)
	for b.Loop() {
		clk.set(clk.now().Add(time.Minute)) // new rows each round, as in production
		if err := a.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(clients)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
