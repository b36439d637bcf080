package agg

import (
	"context"
	"errors"
	"net/netip"
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

// cached returns the cache entry of addr without queueing a lookup.
func cached(r *Resolver, addr netip.Addr) (e cacheEntry, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.cache[addr]
	if !ok {
		return cacheEntry{}, false
	}
	return *el.Value.(*cacheEntry), true
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
		r.Name(addrN(i))
		eventually(t, addrN(i).String(), func() bool { _, ok := cached(r, addrN(i)); return ok })
	}
	r.mu.Lock()
	entries, indexed := r.order.Len(), len(r.cache)
	r.mu.Unlock()
	if entries != size || indexed != size {
		t.Errorf("cache holds %d entries (%d indexed), want %d", entries, indexed, size)
	}
	for i := range 3 * size {
		e, ok := cached(r, addrN(i))
		if newest := i >= 2*size; ok != newest {
			t.Errorf("%s cached = %v, want %v (oldest evicted first)", addrN(i), ok, newest)
		} else if ok && e.name != addrN(i).String()+".example" {
			t.Errorf("%s cached as %q", addrN(i), e.name)
		}
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
	if name := r.Name(addr); name != "" {
		t.Fatalf("Name = %q before any lookup", name)
	}
	eventually(t, "the lookup to time out", func() bool { _, ok := cached(r, addr); return ok })
	if took := time.Since(start); took < timeout || took > timeout+time.Second {
		t.Errorf("lookup gave up after %v, want about %v", took, timeout)
	}
	// The failure is cached: asking again does not look up again.
	for range 10 {
		if name := r.Name(addr); name != "" {
			t.Errorf("Name = %q after a failed lookup", name)
		}
	}
	time.Sleep(10 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d lookups, want 1 (failures are cached)", n)
	}
}

func TestResolverNameNeverBlocks(t *testing.T) {
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
		if name := r.Name(addrN(i)); name != "" {
			t.Fatalf("Name = %q", name)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("%d Name calls took %v with every lookup stuck", n, took)
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
	if name := nilResolver.Name(addrN(1)); name != "" {
		t.Errorf("nil resolver Name = %q", name)
	}
}
