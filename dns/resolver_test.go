package dns

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/traffic"
)

// addrN returns distinct addresses.
func addrN(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
}

// eventually polls cond for up to two seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// cached reports whether addr is in the cache, without queueing a lookup.
func cached(r *Resolver, addr netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.cache[addr]
	return ok
}

// pending returns how many names are found and not handed over yet.
func pending(r *Resolver) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.found)
}

// idle reports whether no lookup is queued or in flight.
func idle(r *Resolver) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting) == 0
}

// run returns a Resolver of cfg whose lookups run until the end of the
// test, which waits for Run to return.
func run(t *testing.T, cfg Config) *Resolver {
	t.Helper()
	if cfg.Save == nil {
		cfg.Save = &saver{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := New(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return r
}

// byName is a lookup that finds a name made of the address.
func byName(_ context.Context, addr netip.Addr) (string, error) {
	return nameOf(addr), nil
}

func nameOf(addr netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(addr.String()) + ".example"
}

// saver is a Saver that records the names it saves and fails while err
// is set; hook, when set, runs first. Consume calls it on the test's own
// goroutine, so it needs no lock.
type saver struct {
	err   error
	hook  func()
	saved []traffic.Name
}

func (s *saver) SaveNames(_ context.Context, names []traffic.Name) error {
	if s.hook != nil {
		s.hook()
	}
	if s.err != nil {
		return s.err
	}
	s.saved = append(s.saved, names...)
	return nil
}

// take returns the names saved since the last call.
func (s *saver) take() []traffic.Name {
	saved := s.saved
	s.saved = nil
	return saved
}

// period returns a period with a row of each client.
func period(clients ...traffic.Client) traffic.Period {
	p := traffic.Period{Start: time.Now().Add(-time.Minute), End: time.Now()}
	for _, c := range clients {
		p.Rows = append(p.Rows, traffic.Row{Start: p.Start, Client: c})
	}
	return p
}

// consume hands r a period, failing the test if it returns an error.
func consume(t *testing.T, r *Resolver, p traffic.Period) {
	t.Helper()
	if err := r.Consume(t.Context(), p); err != nil {
		t.Fatalf("Consume = %v", err)
	}
}

// checkSaved fails unless names holds exactly a name of each of addrs, as
// byName finds them.
func checkSaved(t *testing.T, names []traffic.Name, addrs ...netip.Addr) {
	t.Helper()
	var got []netip.Addr
	for _, n := range names {
		got = append(got, n.Addr)
		if n.DNS != nameOf(n.Addr) || n.Found.IsZero() {
			t.Errorf("saved %+v, want %s found at a time", n, nameOf(n.Addr))
		}
	}
	slices.SortFunc(got, netip.Addr.Compare)
	addrs = slices.SortedFunc(slices.Values(addrs), netip.Addr.Compare)
	if !slices.Equal(got, addrs) {
		t.Errorf("saved names of %v, want %v", got, addrs)
	}
}

func TestResolverCacheBound(t *testing.T) {
	const size = 8
	r := run(t, Config{
		CacheSize: size,
		Rate:      1000,
		Lookup: func(_ context.Context, addr netip.Addr) (string, error) {
			return addr.String() + ".example", nil
		},
	})
	// One at a time, so that the order of insertion is known.
	for i := range 3 * size {
		r.Request(addrN(i))
		eventually(t, addrN(i).String(), func() bool { return cached(r, addrN(i)) })
	}
	r.mu.Lock()
	entries, indexed := r.order.Len(), len(r.cache)
	r.mu.Unlock()
	if entries != size || indexed != size {
		t.Errorf("cache holds %d entries (%d indexed), want %d", entries, indexed, size)
	}
	for i := range 3 * size {
		if ok, newest := cached(r, addrN(i)), i >= 2*size; ok != newest {
			t.Errorf("%s cached = %v, want %v (oldest evicted first)", addrN(i), ok, newest)
		}
	}
	// Names waiting to be stored are bounded the same way, and each is
	// handed over once, oldest first.
	found := r.takeFound()
	if len(found) != size {
		t.Errorf("%d names found, want %d", len(found), size)
	}
	for i, n := range found {
		if n.DNS != n.Addr.String()+".example" {
			t.Errorf("%s found as %q", n.Addr, n.DNS)
		}
		if i > 0 && n.Found.Before(found[i-1].Found) {
			t.Errorf("%s handed over after %s, found later", found[i-1].Addr, n.Addr)
		}
	}
	if again := r.takeFound(); len(again) != 0 {
		t.Errorf("names handed over twice: %v", again)
	}
}

func TestResolverTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	var calls atomic.Int32
	r := run(t, Config{
		Timeout: timeout,
		Lookup: func(ctx context.Context, addr netip.Addr) (string, error) {
			calls.Add(1)
			select {
			case <-time.After(time.Minute):
				return "too-late.example", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		},
	})
	addr := addrN(1)
	start := time.Now()
	r.Request(addr)
	eventually(t, "the lookup to time out", func() bool { return cached(r, addr) })
	if took := time.Since(start); took < timeout || took > timeout+time.Second {
		t.Errorf("lookup gave up after %v, want about %v", took, timeout)
	}
	// The failure is cached: asking again does not look up again.
	for range 10 {
		r.Request(addr)
	}
	time.Sleep(10 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d lookups, want 1 (failures are cached)", n)
	}
	if found := r.takeFound(); len(found) != 0 {
		t.Errorf("a failed lookup found %v", found)
	}
}

func TestResolverRequestNeverBlocks(t *testing.T) {
	var calls atomic.Int32
	r := run(t, Config{
		Lookup: func(ctx context.Context, _ netip.Addr) (string, error) {
			calls.Add(1)
			<-ctx.Done() // no answer within the hour-long timeout
			return "", errors.New("never")
		},
		Timeout: time.Hour,
	})
	const n = 10 * resolverQueue
	start := time.Now()
	for i := range n {
		r.Request(addrN(i))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("%d Request calls took %v with every lookup stuck", n, took)
	}
	// Workers are stuck and the queue full: the rest were skipped, to be
	// asked again later, not piled up.
	r.mu.Lock()
	waiting := len(r.waiting)
	r.mu.Unlock()
	if waiting > resolverQueue+resolverWorkers {
		t.Errorf("%d lookups waiting, want at most %d", waiting, resolverQueue+resolverWorkers)
	}
	eventually(t, "every worker to take a lookup", func() bool { return calls.Load() == resolverWorkers })
}

// TestResolverRateLimited: however many clients ask at once, lookups start
// no faster than the rate allows (after a burst of one per worker).
func TestResolverRateLimited(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Time
	lookup := func(ctx context.Context, addr netip.Addr) (string, error) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return "", nil
	}
	r := run(t, Config{Lookup: lookup, Rate: 20})
	for i := range 100 {
		r.Request(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	n := len(starts)
	mu.Unlock()
	// 4 at once, then 20 a second: about 14 in half a second.
	if n > resolverWorkers+12 || n < resolverWorkers {
		t.Fatalf("%d lookups in 0.5 s at 20 a second", n)
	}
}

// Consume looks up the clients of a period once each, and never Other:
// a forged address summed into it must not make the host query the
// attacker's DNS.
func TestConsumeRequestsClients(t *testing.T) {
	var (
		mu     sync.Mutex
		looked []netip.Addr
	)
	r := run(t, Config{Rate: 1000, Lookup: func(ctx context.Context, addr netip.Addr) (string, error) {
		mu.Lock()
		looked = append(looked, addr)
		mu.Unlock()
		return byName(ctx, addr)
	}})
	a, b := traffic.ClientOf(addrN(1)), traffic.ClientOf(netip.MustParseAddr("2001:db8::2"))
	consume(t, r, period(a, traffic.Other, b, a))
	eventually(t, "both lookups", func() bool { return cached(r, a.Addr()) && cached(r, b.Addr()) && idle(r) })
	consume(t, r, period(a, traffic.Other)) // known: not looked up again
	eventually(t, "any lookup queued to end", func() bool { return idle(r) })

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(looked, netip.Addr.Compare)
	if want := []netip.Addr{a.Addr(), b.Addr()}; !slices.Equal(looked, want) {
		t.Errorf("looked up %v, want each client once (%v) and never Other", looked, want)
	}
}

// Names found in the background are saved by the next Consume, each once,
// oldest first.
func TestConsumeSavesNames(t *testing.T) {
	release := make(chan struct{})
	save := &saver{}
	r := run(t, Config{Save: save, Rate: 1000, Lookup: func(ctx context.Context, addr netip.Addr) (string, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return byName(ctx, addr)
	}})
	a, b := addrN(1), netip.MustParseAddr("2001:db8::2")

	consume(t, r, period(traffic.ClientOf(a), traffic.ClientOf(b))) // lookups held back
	if saved := save.take(); len(saved) != 0 {
		t.Errorf("saved %v before any lookup ended", saved)
	}
	close(release)
	eventually(t, "both lookups", func() bool { return pending(r) == 2 })
	consume(t, r, period()) // a period with no rows: the names alone
	saved := save.take()
	checkSaved(t, saved, a, b)
	if len(saved) == 2 && saved[1].Found.Before(saved[0].Found) {
		t.Errorf("saved %v, want the oldest first", saved)
	}
	consume(t, r, period())
	if again := save.take(); len(again) != 0 {
		t.Errorf("saved %v again", again)
	}
}

// A Saver that fails costs no name: Consume logs the outage once and
// returns nil, so the period's rows are not held back, and the names are
// saved once the Saver works again.
func TestConsumeKeepsNamesWhileSaveFails(t *testing.T) {
	var logs syncbuf.Buffer
	save := &saver{}
	r := run(t, Config{Save: save, Log: slog.New(slog.NewTextHandler(&logs, nil)), Lookup: byName, Rate: 1000})
	a, b := addrN(1), addrN(2)
	consume(t, r, period(traffic.ClientOf(a), traffic.ClientOf(b)))
	eventually(t, "both lookups", func() bool { return pending(r) == 2 })

	const (
		failing   = `level=WARN msg="cannot save reverse DNS names; keeping them for the next flush" names=2 err="database is locked"`
		recovered = `level=INFO msg="saving reverse DNS names again" names=2`
	)
	save.err = errors.New("database is locked")
	for range 3 {
		consume(t, r, period())
	}
	if n := strings.Count(logs.String(), failing); n != 1 {
		t.Errorf("%d lines say names cannot be saved, want 1:\n%s", n, logs.String())
	}
	save.err = nil
	consume(t, r, period())
	checkSaved(t, save.take(), a, b)
	if n := strings.Count(logs.String(), recovered); n != 1 {
		t.Errorf("%d lines say names are saved again, want 1:\n%s", n, logs.String())
	}
}

// Names kept for a failing Saver are bounded by the cache size: names
// found while a save was failing take the room first.
func TestConsumeKeepsNamesBounded(t *testing.T) {
	const size = 2
	save := &saver{}
	r := run(t, Config{Save: save, Lookup: byName, Rate: 1000, CacheSize: size})
	older := []netip.Addr{addrN(1), addrN(2)}
	newer := []netip.Addr{addrN(3), addrN(4)}
	for _, addr := range older {
		r.Request(addr)
	}
	eventually(t, "the older lookups", func() bool { return pending(r) == size })

	// The save fails after the newer names were found meanwhile.
	save.err = errors.New("disk full")
	save.hook = func() {
		for _, addr := range newer {
			r.Request(addr)
		}
		eventually(t, "the newer lookups", func() bool { return pending(r) == size })
	}
	consume(t, r, period())
	save.hook, save.err = nil, nil
	consume(t, r, period())
	checkSaved(t, save.take(), newer...)
}

// Run returns once ctx is done and every lookup in flight has ended, so
// no worker outlives it.
func TestRunJoinsWorkers(t *testing.T) {
	var started, ended atomic.Int32
	r := New(Config{Save: &saver{}, Rate: 1000, Timeout: time.Hour, Lookup: func(ctx context.Context, _ netip.Addr) (string, error) {
		started.Add(1)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a lookup slow to give up
		ended.Add(1)
		return "", ctx.Err()
	}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for i := range resolverWorkers {
		r.Request(addrN(i))
	}
	eventually(t, "every worker to take a lookup", func() bool { return started.Load() == resolverWorkers })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
	if n := ended.Load(); n != resolverWorkers {
		t.Errorf("Run returned with %d of %d lookups still running", resolverWorkers-n, resolverWorkers)
	}
}
