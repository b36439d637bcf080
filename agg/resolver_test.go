package agg

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

func TestResolverCacheBound(t *testing.T) {
	const size = 8
	r := NewResolver(t.Context(), ResolverConfig{
		CacheSize: size,
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
	// handed over once.
	found := r.takeFound()
	if len(found) != size {
		t.Errorf("%d names found, want %d", len(found), size)
	}
	for addr, n := range found {
		if n.dns != addr.String()+".example" {
			t.Errorf("%s found as %q", addr, n.dns)
		}
	}
	if again := r.takeFound(); len(again) != 0 {
		t.Errorf("names handed over twice: %v", again)
	}
}

func TestResolverTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	var calls atomic.Int32
	r := NewResolver(t.Context(), ResolverConfig{
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
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var calls atomic.Int32
	r := NewResolver(ctx, ResolverConfig{
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

	var nilResolver *Resolver
	nilResolver.Request(addrN(1))
	if found := nilResolver.takeFound(); found != nil {
		t.Errorf("nil resolver found %v", found)
	}
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
	r := NewResolver(t.Context(), ResolverConfig{Lookup: lookup, Rate: 20})
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
