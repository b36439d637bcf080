package agg

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/back2basic/collector/traffic"
)

// Then's hook runs once each time its consumer took a period, after it
// did, and not while it refuses them; the hooked consumer keeps its name
// and its own pending rows.
func TestThen(t *testing.T) {
	clk := &clock{t: t0}
	in := &feed{}
	st := &recorder{name: "the database"}
	var hooked []int // periods st had taken, each time the hook ran
	after := func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		hooked = append(hooked, len(st.taken))
	}
	a := NewAggregator(in, Config{Log: discard, Now: clk.now}, Then(st, after))
	flush := func(at time.Duration, s traffic.Sample) {
		t.Helper()
		in.push([]traffic.Sample{s})
		clk.set(t0.Add(at))
		_ = a.Flush(t.Context()) // a refusal is what some rounds test
	}

	flush(time.Minute, sample("192.0.2.1", 1))
	st.setFail(errors.New("database is locked"))
	flush(2*time.Minute, sample("192.0.2.1", 2))
	flush(3*time.Minute, sample("192.0.2.1", 3))
	st.setFail(nil)
	flush(4*time.Minute, sample("192.0.2.1", 4))

	if want := []int{1, 2}; !slices.Equal(hooked, want) {
		t.Errorf("the hook ran after %v periods taken, want after %v: once per period taken, never on a refusal", hooked, want)
	}
	stats := a.Stats()
	if name := stats.Consumers[0].Name; name != "the database" {
		t.Errorf("the hooked consumer is named %q, want its own name", name)
	}
	if got := len(st.periods()[1].Rows); got != 3 {
		t.Errorf("the period taken after the refusals has %d rows, want the 3 minutes kept for it", got)
	}
}

// Open offers what the counters hold since the last drain, from the
// drain's time, without draining them; the next flush hands it over.
func TestOpen(t *testing.T) {
	clk := &clock{t: t0}
	counted := []traffic.Sample{sample("192.0.2.1", 1), overflow(2)}
	var peeked bool
	peek := peekFunc(func() ([]traffic.Sample, error) {
		peeked = true
		return counted, nil
	})
	st := &recorder{name: "store"}
	a := NewAggregator(drainFunc(func() ([]traffic.Sample, error) { return counted, nil }), Config{Log: discard, Now: clk.now, Peeker: peek}, st)

	clk.set(t0.Add(time.Minute))
	if err := a.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(time.Minute + 20*time.Second))
	open, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	if !peeked || !open.Since.Equal(t0.Add(time.Minute)) || !slices.Equal(open.Samples, counted) {
		t.Errorf("Open = since %v, %v samples, want since the last drain %v, the %d samples counted", open.Since, len(open.Samples), t0.Add(time.Minute), len(counted))
	}
	if n := len(st.periods()); n != 1 {
		t.Errorf("Open handed over a period: %d taken, want the one flush's", n)
	}

	fails := errors.New("map lookup: bad file descriptor")
	a = NewAggregator(drainFunc(nil), Config{Log: discard, Peeker: peekFunc(func() ([]traffic.Sample, error) { return nil, fails })})
	if _, err := a.Open(); !errors.Is(err, fails) {
		t.Errorf("Open with the counters failing = %v, want %v", err, fails)
	}
	a = NewAggregator(drainFunc(nil), Config{Log: discard})
	if _, err := a.Open(); err == nil {
		t.Error("Open without a Peeker: no error")
	}
}

// peekFunc adapts a function to Peeker.
type peekFunc func() ([]traffic.Sample, error)

func (f peekFunc) Peek() ([]traffic.Sample, error) { return f() }
