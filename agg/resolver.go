package agg

import (
	"container/list"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of ResolverConfig.
const (
	DefaultCacheSize     = 4096
	DefaultLookupTimeout = 2 * time.Second
	// DefaultLookupRate bounds the lookups a second: a burst of new
	// clients, real or forged, cannot turn into a burst of queries.
	DefaultLookupRate = 5
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
	// CacheSize bounds the number of addresses remembered as recently
	// looked up, found or not, and of names waiting to be stored; the
	// oldest address is forgotten first. 0 means DefaultCacheSize.
	CacheSize int
	// Timeout bounds each lookup; 0 means DefaultLookupTimeout.
	Timeout time.Duration
	// Rate bounds the lookups a second; 0 means DefaultLookupRate.
	Rate rate.Limit
}

// Resolver finds reverse DNS names in the background. Request never waits
// for the network: it queues a lookup unless a bounded cache says the
// address was looked up recently, and the Aggregator takes the names found
// to store them. Names are looked up again once a day while their clients
// are active, so a changed name reaches the database. A nil *Resolver
// resolves nothing.
type Resolver struct {
	lookup  LookupFunc
	timeout time.Duration
	size    int
	queue   chan netip.Addr
	limiter *rate.Limiter

	mu      sync.Mutex
	cache   map[netip.Addr]*list.Element // of *cacheEntry
	order   *list.List                   // least recently stored first
	waiting map[netip.Addr]struct{}      // queued or being looked up
	found   map[netip.Addr]name          // since the last takeFound
}

// cacheEntry records when an address is due for another lookup.
type cacheEntry struct {
	addr    netip.Addr
	expires time.Time
}

// NewResolver starts a Resolver whose workers stop when ctx is done; requests
// are then ignored.
func NewResolver(ctx context.Context, cfg ResolverConfig) *Resolver {
	r := &Resolver{
		lookup:  cfg.Lookup,
		timeout: cfg.Timeout,
		size:    cfg.CacheSize,
		queue:   make(chan netip.Addr, resolverQueue),
		cache:   make(map[netip.Addr]*list.Element),
		order:   list.New(),
		waiting: make(map[netip.Addr]struct{}),
		found:   make(map[netip.Addr]name),
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
	limit := cfg.Rate
	if limit <= 0 {
		limit = DefaultLookupRate
	}
	r.limiter = rate.NewLimiter(limit, resolverWorkers)
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

// Request queues a lookup of addr when its name is not known yet or has
// expired. It never blocks: when the queue is full the lookup is skipped and
// a later call asks again. The overflow entry (the zero Addr) is never looked
// up.
func (r *Resolver) Request(addr netip.Addr) {
	if r == nil || !addr.IsValid() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.cache[addr]; ok && time.Now().Before(el.Value.(*cacheEntry).expires) {
		return
	}
	if _, ok := r.waiting[addr]; !ok {
		select {
		case r.queue <- addr:
			r.waiting[addr] = struct{}{}
		default:
		}
	}
}

// takeFound hands over the names found since the previous call, to be
// stored. It holds at most the cache size of them; past that, a name is
// stored after its next lookup instead.
func (r *Resolver) takeFound() map[netip.Addr]name {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	found := r.found
	r.found = make(map[netip.Addr]name)
	return found
}

func (r *Resolver) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case addr := <-r.queue:
			if r.limiter.Wait(ctx) != nil {
				return
			}
			r.resolve(ctx, addr)
		}
	}
}

func (r *Resolver) resolve(ctx context.Context, addr netip.Addr) {
	lookupCtx, cancel := context.WithTimeout(ctx, r.timeout)
	dns, err := r.lookup(lookupCtx, addr)
	cancel()
	ttl := nameTTL
	if err != nil || dns == "" {
		dns, ttl = "", missTTL
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waiting, addr)
	if ctx.Err() != nil {
		// Shutting down cut the lookup short: that says nothing about addr.
		return
	}
	now := time.Now()
	r.store(addr, now.Add(ttl))
	// A failed lookup never erases a stored name: the PTR record may be
	// back on the next try.
	if _, ok := r.found[addr]; dns != "" && (ok || len(r.found) < r.size) {
		r.found[addr] = name{dns: dns, at: now.Unix()}
	}
}

// store remembers when addr is due for another lookup, forgetting the
// oldest entry when the cache is full. r.mu must be held.
func (r *Resolver) store(addr netip.Addr, expires time.Time) {
	if el, ok := r.cache[addr]; ok {
		el.Value.(*cacheEntry).expires = expires
		r.order.MoveToBack(el)
		return
	}
	if r.order.Len() >= r.size {
		oldest := r.order.Remove(r.order.Front()).(*cacheEntry)
		delete(r.cache, oldest.addr)
	}
	r.cache[addr] = r.order.PushBack(&cacheEntry{addr: addr, expires: expires})
}
