// Package dns finds the reverse DNS names of the clients that moved real
// data, in the background and rate limited, and saves them to the
// database, which shows each address's latest name.
package dns

import (
	"container/list"
	"context"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/traffic"
	"golang.org/x/time/rate"
)

// Defaults of Config.
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

// Saver stores names; *store.Store is one.
type Saver interface {
	SaveNames(ctx context.Context, names []traffic.Name) error
}

// Config sets up a Resolver; the zero value of each field but Save gives
// its default.
type Config struct {
	// Save stores the names found.
	Save Saver
	// Log hears when names cannot be saved, and when they can again;
	// default slog.Default().
	Log *slog.Logger
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
// address was looked up recently. Each closed period (Consume) requests
// the names of its clients and saves those found since the last one.
// Names are looked up again once a day while their clients are active, so
// a changed name reaches the database.
type Resolver struct {
	lookup  LookupFunc
	timeout time.Duration
	size    int
	queue   chan netip.Addr
	limiter *rate.Limiter
	save    Saver
	log     *slog.Logger
	saving  outage.Outage

	mu      sync.Mutex
	cache   map[netip.Addr]*list.Element // of *cacheEntry
	order   *list.List                   // least recently stored first
	waiting map[netip.Addr]struct{}      // queued or being looked up
	found   map[netip.Addr]traffic.Name  // not saved yet
}

// cacheEntry records when an address is due for another lookup.
type cacheEntry struct {
	addr    netip.Addr
	expires time.Time
}

// New returns a Resolver; lookups start with Run.
func New(cfg Config) *Resolver {
	r := &Resolver{
		lookup:  cfg.Lookup,
		timeout: cfg.Timeout,
		size:    cfg.CacheSize,
		queue:   make(chan netip.Addr, resolverQueue),
		save:    cfg.Save,
		log:     cfg.Log,
		saving: outage.Outage{
			Start: "cannot save reverse DNS names; keeping them for the next flush",
			End:   "saving reverse DNS names again",
		},
		cache:   make(map[netip.Addr]*list.Element),
		order:   list.New(),
		waiting: make(map[netip.Addr]struct{}),
		found:   make(map[netip.Addr]traffic.Name),
	}
	if r.log == nil {
		r.log = slog.Default()
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
	return r
}

// Run looks up the names requested until ctx is done, then returns once
// every lookup in flight has ended.
func (r *Resolver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range resolverWorkers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Wait()
	return nil
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
	if !addr.IsValid() {
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

// String names the resolver in the journal and the metrics.
func (r *Resolver) String() string { return "reverse DNS" }

// Consume requests the names of the clients of a closed period and saves
// the names found since the last call. Only clients with rows of their
// own are looked up, never those summed into Other: a forged address must
// not make the host query the attacker's DNS. Names that cannot be saved
// are kept, at most the cache size of them, and saved with the next
// period; the failure is logged, not returned, so the period's rows are
// not held for the resolver. The aggregator calls it one period at a
// time; it is not meant for concurrent callers.
func (r *Resolver) Consume(ctx context.Context, p traffic.Period) error {
	for _, row := range p.Rows {
		if !row.Client.IsOther() {
			r.Request(row.Client.Addr())
		}
	}
	found := r.takeFound()
	err := r.save.SaveNames(ctx, found)
	r.saving.Update(ctx, r.log, time.Now(), err, "names", len(found))
	if err != nil {
		r.putBack(found)
	}
	return nil
}

// takeFound hands over the names found and not saved yet, oldest first.
func (r *Resolver) takeFound() []traffic.Name {
	r.mu.Lock()
	defer r.mu.Unlock()
	found := slices.SortedFunc(maps.Values(r.found), func(a, b traffic.Name) int { return a.Found.Compare(b.Found) })
	clear(r.found)
	return found
}

// putBack keeps names that could not be saved, unless a newer lookup of
// the same address was found meanwhile, within the cache size; past that,
// a name is saved after its next lookup instead.
func (r *Resolver) putBack(names []traffic.Name) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		if _, ok := r.found[n.Addr]; !ok && len(r.found) < r.size {
			r.found[n.Addr] = n
		}
	}
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
		r.found[addr] = traffic.Name{Addr: addr, DNS: dns, Found: now}
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
