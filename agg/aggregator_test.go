package agg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/dns"
	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
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

// Rows are filed under the minute their period started in, and several
// flushes in one minute add up.
func TestFlushSumsExactly(t *testing.T) {
	type round struct {
		at      time.Duration // after t0, when the flush happens
		samples []traffic.Sample
		minute  time.Duration // after t0, where the samples must land
	}
	rounds := []round{
		// Started at 10:00:37: the first period belongs to 10:00.
		{at: time.Minute + 2*time.Millisecond, minute: 0, samples: []traffic.Sample{
			sample("192.0.2.1", 1), sample("2001:db8::1", 2), overflow(3),
			{Client: traffic.ClientOf(netip.MustParseAddr("192.0.2.9"))}, // zero: no row
		}},
		// 30 s flushes: both halves of 10:01 sum into one row per client.
		{at: 90 * time.Second, minute: time.Minute, samples: []traffic.Sample{
			sample("192.0.2.1", 4), sample("::ffff:192.0.2.2", 5), overflow(6),
		}},
		{at: 2 * time.Minute, minute: time.Minute, samples: []traffic.Sample{
			sample("192.0.2.1", 7), sample("192.0.2.2", 8), sample("2001:db8::1", 9),
		}},
		{at: 3 * time.Minute, minute: 2 * time.Minute, samples: []traffic.Sample{
			sample("2001:db8::1", 10), overflow(11),
		}},
		{at: 4 * time.Minute, minute: 3 * time.Minute, samples: nil},
	}
	st := openStore(t)
	clk := &clock{t: t0.Add(37 * time.Second)}
	in := &feed{}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now}, st)
	want := make(map[rowKey]traffic.Traffic)
	for _, r := range rounds {
		in.push(r.samples)
		clk.set(t0.Add(r.at))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		expect(want, t0.Add(r.minute), r.samples)
	}
	checkRows(t, st, want)
	if _, ok := want[rowKey{t0.Unix(), traffic.ClientOf(netip.MustParseAddr("192.0.2.9"))}]; ok {
		t.Error("test bug: a zero sample was expected")
	}
	if _, ok := want[rowKey{t0.Add(time.Minute).Unix(), traffic.ClientOf(netip.MustParseAddr("192.0.2.2"))}]; !ok {
		t.Error("test bug: the v4-mapped client was expected under its IPv4 address")
	}
}

// Every consumer is handed every period, in order, the empty ones too:
// the periods tile the time from the first period's start, and each
// holds the rows drained at its end.
func TestEveryConsumerGetsEveryPeriod(t *testing.T) {
	type round struct {
		at      time.Duration // after t0, when the flush happens
		samples []traffic.Sample
		fail    bool // the drain fails
	}
	rounds := []round{
		{at: time.Minute, samples: []traffic.Sample{sample("192.0.2.1", 1), overflow(2)}},
		{at: 2 * time.Minute},             // nothing drained
		{at: 3 * time.Minute, fail: true}, // the drain fails: nothing taken
		{at: 4 * time.Minute, samples: []traffic.Sample{sample("2001:db8::1", 3)}},
		{at: 5 * time.Minute, samples: []traffic.Sample{{Client: addrN(1)}}}, // zeros only
	}
	clk := &clock{t: t0}
	var next round
	d := drainFunc(func() ([]traffic.Sample, error) {
		if next.fail {
			return nil, errors.New("map swap: bad file descriptor")
		}
		return next.samples, nil
	})
	first, second := &recorder{name: "first"}, &recorder{name: "second"}
	a := NewAggregator(d, Config{Log: discard, Now: clk.now}, first, second)
	type period struct {
		start, end time.Time
		rows       map[rowKey]traffic.Traffic
	}
	var want []period
	start, minute := t0, t0 // the open period's start, and its minute
	for _, r := range rounds {
		next = r
		clk.set(t0.Add(r.at))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		p := period{start: start, end: clk.now(), rows: map[rowKey]traffic.Traffic{}}
		if r.fail {
			p.end = start
		} else {
			expect(p.rows, minute, r.samples)
			start, minute = clk.now(), clk.now()
		}
		want = append(want, p)
	}
	for _, c := range []*recorder{first, second} {
		got := c.periods()
		if len(got) != len(want) {
			t.Fatalf("%s took %d periods, want %d", c, len(got), len(want))
		}
		for i, p := range got {
			if !p.Start.Equal(want[i].start) || !p.End.Equal(want[i].end) {
				t.Errorf("%s: period %d from %v to %v, want %v to %v", c, i, p.Start, p.End, want[i].start, want[i].end)
			}
			dbtest.CheckSame(t, fmt.Sprintf("%s, period %d", c, i), keyed(p.Rows), want[i].rows)
			if len(p.Rows) != len(want[i].rows) {
				t.Errorf("%s: period %d has %d rows, want %d, one per minute and client", c, i, len(p.Rows), len(want[i].rows))
			}
		}
	}
}

// A failed drain takes nothing: the next one brings that period's packets,
// still under the period's start.
func TestFlushAfterDrainError(t *testing.T) {
	st := openStore(t)
	var logs logBuffer
	clk := &clock{t: t0}
	fail := true
	d := drainFunc(func() ([]traffic.Sample, error) {
		if fail {
			return nil, errors.New("map swap: bad file descriptor")
		}
		return []traffic.Sample{sample("192.0.2.1", 1)}, nil
	})
	a := NewAggregator(d, Config{Log: newLogger(&logs), Now: clk.now}, st)
	clk.set(t0.Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatalf("flush with nothing drained: %v", err)
	}
	fail = false
	clk.set(t0.Add(2 * time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkRows(t, st, map[rowKey]traffic.Traffic{{t0.Unix(), traffic.ClientOf(netip.MustParseAddr("192.0.2.1"))}: dbtest.Seeded(1)})
	if n := logs.count("level=WARN", "drain counters", "bad file descriptor"); n != 1 {
		t.Errorf("drain warnings = %d, want 1:\n%s", n, logs.String())
	}
}

// While the file cannot be written, rows pile up in memory merged; once it
// can, one flush writes them all, and the outage is logged once going in
// and once coming out. A consumer after the store is not held back
// meanwhile: it takes every period once, as it comes.
func TestFlushKeepsRowsWhileUnwritable(t *testing.T) {
	t.Parallel()
	for _, b := range blockers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			path := newPath(t)
			st := openPath(t, path, store.Options{})
			var logs logBuffer
			clk := &clock{t: t0}
			in := &feed{}
			after := &recorder{name: "after"}
			a := NewAggregator(in, Config{Log: newLogger(&logs), Now: clk.now}, st, after)
			want := make(map[rowKey]traffic.Traffic)
			rounds := 0
			round := func(i int) error {
				t.Helper()
				batch := []traffic.Sample{sample("192.0.2.1", uint64(i)), sample("2001:db8::7", uint64(10+i)), overflow(uint64(20 + i))}
				in.push(batch)
				expect(want, clk.now().Truncate(time.Minute), batch)
				clk.set(clk.now().Add(time.Minute))
				rounds++
				return a.Flush(t.Context())
			}
			stored := a.queues[0]
			if err := round(0); err != nil {
				t.Fatal(err)
			}
			for outage := range 2 {
				unblock := b.block(t, path)
				for i := range 3 {
					if err := round(i); err == nil {
						t.Fatalf("outage %d round %d: flush succeeded", outage, i)
					}
				}
				if len(stored.pending) == 0 {
					t.Fatal("rows dropped after failed flushes")
				}
				unblock()
				if err := round(3); err != nil {
					t.Fatal(err)
				}
				if len(stored.pending) != 0 {
					t.Errorf("%d rows still pending after a successful flush", len(stored.pending))
				}
				checkRows(t, st, want)
				n := 0
				for _, e := range b.errs {
					n += logs.count("level=WARN", "cannot hand traffic to "+st.String()+"; keeping it in memory", e)
				}
				if n != outage+1 {
					t.Errorf("after outage %d: %d warnings, want %d:\n%s", outage, n, outage+1, logs.String())
				}
				if n := logs.count("level=INFO", "handing traffic to "+st.String()+" again"); n != outage+1 {
					t.Errorf("after outage %d: %d recoveries logged, want %d:\n%s", outage, n, outage+1, logs.String())
				}
			}
			if got := len(after.periods()); got != rounds {
				t.Errorf("the consumer after the store took %d periods in %d flushes", got, rounds)
			}
			dbtest.CheckSame(t, "the consumer after the store", after.rows(), want)
			if n := logs.count("to after"); n != 0 {
				t.Errorf("the consumer after the store is logged as failing:\n%s", logs.String())
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	t.Run("final flush writes the last partial period", func(t *testing.T) {
		st := openStore(t)
		clk := &clock{t: t0.Add(30 * time.Second)} // next boundary half a minute away
		in := &feed{}
		batch := []traffic.Sample{sample("192.0.2.1", 1), overflow(2)}
		in.push(batch)
		a := NewAggregator(in, Config{Log: discard, Now: clk.now}, st)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		want := make(map[rowKey]traffic.Traffic)
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
		d := drainFunc(func() ([]traffic.Sample, error) {
			drained <- now()
			return nil, nil
		})
		a := NewAggregator(d, Config{Log: discard, Now: now}, openStore(t))
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
			fed    traffic.Traffic
		)
		d := drainFunc(func() ([]traffic.Sample, error) {
			mu.Lock()
			defer mu.Unlock()
			drains++
			s := sample("2001:db8::1", uint64(drains))
			fed.Add(&s.Traffic)
			return []traffic.Sample{s}, nil
		})
		a := NewAggregator(d, Config{Log: discard, Interval: 10 * time.Millisecond}, st)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatal(err)
		}
		// The last drain is the final flush's; the rest are rounds.
		if drains < 3 {
			t.Errorf("%d drains in 200 ms at a 10 ms interval", drains)
		}
		got, err := allClients(t.Context(), st, store.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Traffic != fed {
			t.Errorf("stored %+v, want one client with %+v", got, fed)
		}
	})

	for _, b := range blockers {
		t.Run("abandons rows the file never takes/"+b.name, func(t *testing.T) {
			t.Parallel()
			path := newPath(t)
			st := openPath(t, path, store.Options{})
			var logs logBuffer
			in := &feed{}
			in.push([]traffic.Sample{sample("192.0.2.1", 1), sample("192.0.2.2", 2)})
			a := NewAggregator(in, Config{Log: newLogger(&logs)}, st)
			b.block(t, path)
			err := shutDownRetrying(t, a)
			if err == nil || !strings.HasPrefix(err.Error(), "abandon 2 rows (") || !strings.Contains(err.Error(), st.String()) {
				t.Errorf("Run = %v, want an error abandoning 2 rows for %s", err, st)
			}
			if n := logs.count("level=ERROR", "abandon traffic that could not be handed over at shutdown", st.String(), "rows=2"); n != 1 {
				t.Errorf("%d abandon lines logged, want 1:\n%s", n, logs.String())
			}
		})
	}

	t.Run("retries a failing consumer, not holding back one that works", func(t *testing.T) {
		t.Parallel()
		var logs logBuffer
		in := &feed{}
		batch := []traffic.Sample{sample("192.0.2.1", 1), sample("192.0.2.2", 2), overflow(3)}
		in.push(batch)
		clk := &clock{t: t0.Add(30 * time.Second)}
		down := errors.New("metrics endpoint gone")
		failing, working := &recorder{name: "failing", fail: down}, &recorder{name: "working"}
		a := NewAggregator(in, Config{Log: newLogger(&logs), Now: clk.now}, failing, working)
		err := shutDownRetrying(t, a)
		if err == nil || !strings.HasPrefix(err.Error(), "abandon 3 rows (") || !strings.Contains(err.Error(), "for failing") || !errors.Is(err, down) {
			t.Errorf("Run = %v, want an error abandoning 3 rows for failing, wrapping %v", err, down)
		}
		if n := logs.count("level=ERROR", "abandon traffic that could not be handed over at shutdown", "consumer=failing", "rows=3"); n != 1 {
			t.Errorf("%d abandon lines for failing logged, want 1:\n%s", n, logs.String())
		}
		if n := logs.count("abandon", "working"); n != 0 {
			t.Errorf("traffic abandoned for the working consumer:\n%s", logs.String())
		}
		// One attempt, then one every finalRetryPause until the timeout.
		if atLeast := int(finalFlushTimeout/finalRetryPause) - 2; failing.calls < atLeast {
			t.Errorf("failing consumer tried %d times, want at least %d", failing.calls, atLeast)
		}
		if working.calls != failing.calls {
			t.Errorf("working consumer handed %d periods, failing %d: every attempt hands both one", working.calls, failing.calls)
		}
		want := make(map[rowKey]traffic.Traffic)
		expect(want, t0, batch)
		dbtest.CheckSame(t, "working consumer", working.rows(), want)
	})

	t.Run("a consumer that recovers within the last retries takes everything", func(t *testing.T) {
		t.Parallel()
		in := &feed{}
		batch := []traffic.Sample{sample("192.0.2.1", 1), overflow(3)}
		in.push(batch)
		clk := &clock{t: t0.Add(30 * time.Second)}
		late := &recorder{name: "late", fail: errors.New("not yet")}
		a := NewAggregator(in, Config{Log: discard, Now: clk.now}, late)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		time.AfterFunc(finalFlushTimeout/4, func() { late.setFail(nil) })
		start := time.Now()
		if err := a.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if took := time.Since(start); took >= finalFlushTimeout {
			t.Errorf("shutdown took %v after the consumer took everything", took)
		}
		want := make(map[rowKey]traffic.Traffic)
		expect(want, t0, batch)
		dbtest.CheckSame(t, "late consumer", late.rows(), want)
	})
}

// Names found in the background are saved once per address on a later
// flush, whatever rows it has, by the resolver as a consumer beside the
// store; the overflow entry is never looked up.
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
	res := dns.New(dns.Config{Save: st, Log: discard, Lookup: lookup, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	resolving := make(chan error)
	go func() { resolving <- res.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-resolving
	})
	clk := &clock{t: t0}
	in := &feed{}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now}, st, res)
	flush := func(samples ...traffic.Sample) {
		t.Helper()
		in.push(samples)
		clk.set(clk.now().Add(time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	names := func() map[string]string {
		t.Helper()
		clients, err := allClients(t.Context(), st, store.Query{})
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string]string)
		for _, c := range clients {
			if c.DNS != "" {
				out[c.Client.String()] = c.DNS
			}
		}
		return out
	}

	flush(sample("192.0.2.1", 1), sample("2001:db8::2", 2), overflow(3)) // lookups held back
	if got := names(); len(got) != 0 {
		t.Errorf("names %v saved before any lookup ended", got)
	}
	close(release)
	want := map[string]string{"192.0.2.1": "192-0-2-1.example", "2001:db8::2": "2001-db8--2.example"}
	eventually(t, "both names saved", func() bool {
		flush() // nothing drained: the names alone
		return maps.Equal(names(), want)
	})
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
	t.Parallel()
	clk := &clock{t: t0}
	st := openPath(t, newPath(t), store.Options{Now: clk.now, Retention: store.Retention{Minutes: time.Hour, Hourly: 24 * time.Hour}})
	in := &feed{}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now}, st)
	want := make(map[rowKey]traffic.Traffic)
	for i := range 130 { // 10:00 to 12:10
		batch := []traffic.Sample{sample("192.0.2.1", uint64(i)), overflow(uint64(i % 7))}
		in.push(batch)
		expect(want, clk.now(), batch)
		clk.set(clk.now().Add(time.Minute))
		if err := a.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Rolled up to 12:00, minute rows kept from 11:00 (an hour before
	// 12:10, floored to the hour), no day closed yet.
	checkTable(t, st, store.Hours, groupBy(want, time.Hour, t0, t0.Add(2*time.Hour)))
	checkRows(t, st, groupBy(want, time.Minute, t0.Add(time.Hour), clk.now()))
	checkTable(t, st, store.Days, nil)
	got, err := allClients(t.Context(), st, store.Query{Since: t0})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("%d clients read back, want 192.0.2.1 and other", len(got))
	}
	for _, total := range got {
		var w traffic.Traffic
		for k, tr := range want {
			if k.client == total.Client {
				w.Add(&tr)
			}
		}
		if total.Traffic != w {
			t.Errorf("%s: %d bytes, want %d", total.Client, total.Traffic.Bytes(), w.Bytes())
		}
	}
}

// shutDownRetrying runs a as at SIGTERM, its ctx done from the start, and
// checks that its last flush was retried for finalFlushTimeout.
func shutDownRetrying(t *testing.T, a *Aggregator) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	err := a.Run(ctx)
	if took := time.Since(start); took < finalFlushTimeout || took > finalFlushTimeout+time.Second {
		t.Errorf("shutdown took %v, want the %v of retries", took, finalFlushTimeout)
	}
	return err
}
