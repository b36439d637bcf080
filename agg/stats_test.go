package agg

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Stats follow the flushes: drains that fail, consumers that refuse and
// catch up, and what went to the overflow entry.
func TestStats(t *testing.T) {
	clk := &clock{t: t0.Add(10 * time.Second)}
	drainErr := errors.New("swap counter maps: boom")
	var failDrain bool
	in := &feed{}
	d := drainFunc(func() ([]traffic.Sample, error) {
		if failDrain {
			return nil, drainErr
		}
		return in.Drain()
	})
	db := &recorder{name: "db"}
	view := &recorder{name: "view"}
	a := NewAggregator(d, Config{Log: discard, Now: clk.now}, db, view)

	want := Stats{LastSuccess: t0.Add(10 * time.Second), Consumers: []ConsumerStats{{Name: "db"}, {Name: "view"}}}
	checkStats(t, "new", a.Stats(), want)

	flush := func(at time.Duration, samples ...traffic.Sample) {
		t.Helper()
		in.push(samples)
		clk.set(t0.Add(at))
		_ = a.Flush(t.Context())
	}

	// Two clients and the overflow entry: the overflow is counted.
	flush(time.Minute, sample("192.0.2.1", 1), sample("192.0.2.2", 2), overflow(3))
	over := overflow(3).Traffic
	want.Flushes, want.LastFlush, want.LastSuccess = 1, t0.Add(time.Minute), t0.Add(time.Minute)
	want.Overflow = traffic.Tally{Bytes: over.Bytes(), Packets: over.Packets()}
	checkStats(t, "first flush", a.Stats(), want)

	// The database refuses: its rows wait, the flush is no success.
	db.setFail(errors.New("database is locked"))
	flush(2*time.Minute, sample("192.0.2.1", 4), sample("192.0.2.3", 5))
	want.Flushes, want.LastFlush = 2, t0.Add(2*time.Minute)
	want.Consumers[0] = ConsumerStats{Name: "db", PendingRows: 2, Errors: 1}
	checkStats(t, "database refuses", a.Stats(), want)

	// The drain fails too: nothing new, the database still refuses.
	failDrain = true
	flush(3 * time.Minute)
	want.Flushes, want.LastFlush, want.DrainErrors = 3, t0.Add(3*time.Minute), 1
	want.Consumers[0].Errors = 2
	checkStats(t, "drain fails", a.Stats(), want)

	// The database takes everything, but the drain still fails: no
	// success yet.
	db.setFail(nil)
	flush(4 * time.Minute)
	want.Flushes, want.LastFlush, want.DrainErrors = 4, t0.Add(4*time.Minute), 2
	want.Consumers[0].PendingRows = 0
	checkStats(t, "database back", a.Stats(), want)

	failDrain = false
	flush(5*time.Minute, sample("192.0.2.1", 6))
	want.Flushes, want.LastFlush, want.LastSuccess = 5, t0.Add(5*time.Minute), t0.Add(5*time.Minute)
	checkStats(t, "all well", a.Stats(), want)
}

// checkStats compares stats, but for the flush duration, which is real
// time.
func checkStats(t *testing.T, what string, got, want Stats) {
	t.Helper()
	if got.LastFlushDuration < 0 || got.Flushes == 0 && got.LastFlushDuration != 0 {
		t.Errorf("%s: LastFlushDuration = %v", what, got.LastFlushDuration)
	}
	got.LastFlushDuration = 0
	if !got.LastFlush.Equal(want.LastFlush) || !got.LastSuccess.Equal(want.LastSuccess) {
		t.Errorf("%s: LastFlush, LastSuccess = %v, %v, want %v, %v", what, got.LastFlush, got.LastSuccess, want.LastFlush, want.LastSuccess)
	}
	got.LastFlush, got.LastSuccess = want.LastFlush, want.LastSuccess
	if got.Flushes != want.Flushes || got.DrainErrors != want.DrainErrors || got.Overflow != want.Overflow {
		t.Errorf("%s: Flushes, DrainErrors, Overflow = %d, %d, %+v, want %d, %d, %+v",
			what, got.Flushes, got.DrainErrors, got.Overflow, want.Flushes, want.DrainErrors, want.Overflow)
	}
	if len(got.Consumers) != len(want.Consumers) {
		t.Fatalf("%s: Consumers = %+v, want %+v", what, got.Consumers, want.Consumers)
	}
	for i := range want.Consumers {
		if got.Consumers[i] != want.Consumers[i] {
			t.Errorf("%s: Consumers[%d] = %+v, want %+v", what, i, got.Consumers[i], want.Consumers[i])
		}
	}
}

// A scrape must not wait for a flush held up by a slow consumer.
func TestStatsDuringFlush(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := consumerFunc(func(context.Context, traffic.Period) error {
		close(entered)
		<-release
		return nil
	})
	a := NewAggregator(&feed{}, Config{Log: discard}, slow)
	done := make(chan error)
	go func() { done <- a.Flush(t.Context()) }()
	<-entered
	got := make(chan Stats)
	go func() { got <- a.Stats() }()
	select {
	case s := <-got:
		if s.Flushes != 0 {
			t.Errorf("Flushes = %d during the first flush, want 0", s.Flushes)
		}
	case <-time.After(5 * time.Second):
		t.Error("Stats waited for the running flush")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Flushes != 1 || s.LastFlushDuration <= 0 {
		t.Errorf("after the flush: Flushes = %d, LastFlushDuration = %v", s.Flushes, s.LastFlushDuration)
	}
}

// consumerFunc adapts a function to Consumer.
type consumerFunc func(context.Context, traffic.Period) error

func (f consumerFunc) Consume(ctx context.Context, p traffic.Period) error { return f(ctx, p) }
