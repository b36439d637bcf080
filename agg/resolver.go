package agg

import (
	"container/list"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults of ResolverConfig.
const (
	DefaultCacheSize     = 4096
	DefaultLookupTimeout = 2 * time.Second
)

const (
	// resolverWorkers bounds the lookups in flight: enough to keep up with
	// new clients, few enough not to hammer the system resolver.
	resolverWorkers = 4
	// resolverQueue bounds the addresses waiting for a worker. A burst of
	// new clients beyond it is asked for again on a later flush.
	resolverQueue = 256
	// nameTTL and missTTL decide when an address is looked up again: names
	// change rarely, while a failure may be a passing outage.
	nameTTL = 24 * time.Hour
	missTTL = 10 * time.Minute
)

// LookupFunc returns the reverse DNS name of addr, without a trailing dot, or
// "" when it has none. It must return once ctx is done.
type LookupFunc func(ctx context.Context, addr netip.Addr) (string, error)

// ResolverConfig sets up a Resolver; the zero value gives the defaults.
type ResolverConfig struct {
	// Lookup finds a name; nil means the system resolver.
	Lookup LookupFunc
	// CacheSize bounds the number of addresses remembered, names and
	// failures alike; the oldest is forgotten first. 0 means
	// DefaultCacheSize.
	CacheSize int
	// Timeout bounds each lookup; 0 means DefaultLookupTimeout.
	Timeout time.Duration
}

// Resolver finds reverse DNS names in the background. Name never waits for
// the network: it answers from a bounded cache and queues a lookup for the
// next time. A nil *Resolver resolves nothing.
type Resolver struct {
	lookup  LookupFunc
	timeout time.Duration
	size    int
	queue   chan netip.Addr

	mu      sync.Mutex
	cache   map[netip.Addr]*list.Element // of *cacheEntry
	order   *list.List                   // least recently stored first
	waiting map[netip.Addr]struct{}      // queued or being looked up
}

type cacheEntry struct {
	addr    netip.Addr
	name    string
	expires time.Time
}

// NewResolver starts a Resolver whose workers stop when ctx is done; Name
// then keeps answering from the cache.
func NewResolver(ctx context.Context, cfg ResolverConfig) *Resolver {
	r := &Resolver{
		lookup:  cfg.Lookup,
		timeout: cfg.Timeout,
		size:    cfg.CacheSize,
		queue:   make(chan netip.Addr, resolverQueue),
		cache:   make(map[netip.Addr]*list.Element),
		order:   list.New(),
		waiting: make(map[netip.Addr]struct{}),
	}
	if r.lookup == nil {
		r.lookup = lookupPTR
	}
	if r.timeout <= 0 {
		r.timeout = DefaultLookupTimeout
	}
	if r.size <= 0 {
		r.size = DefaultCacheSize
	}
	for range resolverWorkers {
		go r.work(ctx)
	}
	return r
}

// lookupPTR asks the system resolver. The net package already drops names
// that are not well-formed, which matters because whoever owns the client's
// address block controls its PTR record.
func lookupPTR(ctx context.Context, addr netip.Addr) (string, error) {
	names, err := net.DefaultResolver.LookupAddr(ctx, addr.String())
	if err != nil || len(names) == 0 {
		return "", err
	}
	return strings.TrimSuffix(names[0], "."), nil
}

// Name returns the cached name of addr, or "" when none is known yet, and
// queues a lookup when the address is new or its entry has expired (an
// expired name is still returned until the new answer arrives). It never
// blocks: when the queue is full the lookup is skipped and a later call asks
// again.
func (r *Resolver) Name(addr netip.Addr) string {
	if r == nil || !addr.IsValid() {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var name string
	if el, ok := r.cache[addr]; ok {
		e := el.Value.(*cacheEntry)
		if time.Now().Before(e.expires) {
			return e.name
		}
		name = e.name
	}
	if _, ok := r.waiting[addr]; !ok {
		select {
		case r.queue <- addr:
			r.waiting[addr] = struct{}{}
		default:
		}
	}
	return name
}

func (r *Resolver) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-r.queue:
			r.resolve(ctx, addr)
		}
	}
}

func (r *Resolver) resolve(ctx context.Context, addr netip.Addr) {
	lookupCtx, cancel := context.WithTimeout(ctx, r.timeout)
	name, err := r.lookup(lookupCtx, addr)
	cancel()
	ttl := nameTTL
	if err != nil || name == "" {
		name, ttl = "", missTTL
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waiting, addr)
	if ctx.Err() != nil {
		// Shutting down cut the lookup short: that says nothing about addr.
		return
	}
	r.store(addr, name, time.Now().Add(ttl))
}

// store remembers a result, forgetting the oldest entry when the cache is
// full. r.mu must be held.
func (r *Resolver) store(addr netip.Addr, name string, expires time.Time) {
	if el, ok := r.cache[addr]; ok {
		e := el.Value.(*cacheEntry)
		e.name, e.expires = name, expires
		r.order.MoveToBack(el)
		return
	}
	if r.order.Len() >= r.size {
		oldest := r.order.Remove(r.order.Front()).(*cacheEntry)
		delete(r.cache, oldest.addr)
	}
	r.cache[addr] = r.order.PushBack(&cacheEntry{addr: addr, name: name, expires: expires})
}
