// Package bpfgo loads the collector datapath, attaches it to interfaces,
// pins its maps, and reads the per-client counters.
//
// The counters live in a hash map that sits in a one-slot ARRAY_OF_MAPS.
// Drain puts an empty map into the slot, which makes the kernel wait until
// no running program can still hold the old one, then reads and clears the
// old map. No increment is lost or counted twice, and the packet path never
// takes a lock. A second, smaller map in a slot of its own holds the
// clients the host proved real while the counter map was full; Drain swaps
// it the same way. So it does each CPU's cache of its last client: the
// datapath adds a packet of the same client there, with no hash lookup
// and no atomic, and what a cache still holds when it is swapped out is
// read like a map.
package bpfgo

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/traffic"
)

// DefaultMaxClients is how many client addresses one drain period holds
// before further new clients are counted in the overflow entry.
const DefaultMaxClients = 65536

// DefaultProvenClients is how many clients that proved themselves while
// the counter map was full one drain period holds; past it they are
// counted in the overflow entry too. Proven clients are seeded into the
// next periods' counter maps (agg), so this only needs room for those
// that first prove themselves in a period that is already full: new
// renters arriving during a flood. It costs about a sixteenth of the
// counter map's memory (about 0.7 MB a map).
const DefaultProvenClients = 4096

// DefaultPinPath is where maps are pinned when pinning is on.
const DefaultPinPath = "/sys/fs/bpf/collector"

// The two counter maps take turns in their slot, as do the two proven
// maps and the two caches in theirs; with pinning they are found again
// under these names.
var (
	counterMapNames = [2]string{"counters_a", "counters_b"}
	provenMapNames  = [2]string{"proven_a", "proven_b"}
	cacheMapNames   = [2]string{"last_clients_a", "last_clients_b"}
)

// flagProven mirrors CLIENT_PROVEN in bpf/types.h: the datapath's mark on
// a client's entry.
const flagProven = 1 << 0

// Config says how to load the datapath.
type Config struct {
	Ports traffic.Ports
	// MaxClients bounds the client addresses counted per drain period;
	// 0 means DefaultMaxClients.
	MaxClients uint32
	// ProvenClients bounds the clients that get an entry of their own by
	// proving themselves while the counter map is full; 0 means
	// DefaultProvenClients.
	ProvenClients uint32
	// PinPath, when set, is a bpffs directory where the maps are pinned
	// so counting survives a restart; empty means nothing is pinned.
	PinPath string
	Logger  *slog.Logger

	// uncached loads the datapath without its cache of the last client:
	// the benchmark's before, and what the cache must count the same as.
	uncached bool
}

// Counters is the loaded datapath: its programs and its counter maps.
type Counters struct {
	log     *slog.Logger
	coll    *ebpf.Collection
	xdp     *ebpf.Program // for frames in one buffer
	xdpFrag *ebpf.Program // for multi-buffer frames; nil before 5.18
	tc      *ebpf.Program // egress
	// tcIngress counts incoming packets where XDP is not used.
	tcIngress *ebpf.Program
	pinPath   string

	mu       sync.Mutex
	counters slotted // the counter maps
	proven   slotted // room for clients proven while the counter map is full
	caches   slotted // each CPU's cache of its last client per direction
	// held are counts read from a map but not yet returned by Drain.
	held []traffic.Sample
	// seed are the clients each map gets an entry for before it goes into
	// the slot, at most maxSeed (half the map).
	seed    []bpf.CollectorClientKey
	maxSeed int

	stats counterStats
}

var overflowKey bpf.CollectorClientKey // the address ::

// Load loads the programs and counter maps into the kernel (nothing is
// attached yet). With cfg.PinPath set it reuses compatible pinned maps,
// so the first Drain returns what was counted while no daemon ran.
func Load(cfg Config) (*Counters, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.ProvenClients == 0 {
		cfg.ProvenClients = DefaultProvenClients
	}
	flags, err := portFlags(cfg.Ports)
	if err != nil {
		return nil, err
	}
	// Probe lifts RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF
	// maps to (pinned maps of an earlier run included), or fails saying
	// it could not.
	if err := Probe(); err != nil {
		return nil, err
	}

	spec, err := bpf.LoadCollector()
	if err != nil {
		return nil, fmt.Errorf("read embedded bpf object: %w", err)
	}
	var specs bpf.CollectorSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, fmt.Errorf("read embedded bpf object: %w", err)
	}
	if err := specs.PortFlags.Set(flags); err != nil {
		return nil, fmt.Errorf("set port sets: %w", err)
	}
	if err := specs.CacheLastClient.Set(!cfg.uncached); err != nil {
		return nil, fmt.Errorf("set the cache of the last client: %w", err)
	}
	// One more entry than clients: the overflow entry.
	specs.Clients.InnerMap.MaxEntries = cfg.MaxClients + 1
	specs.ProvenClients.InnerMap.MaxEntries = cfg.ProvenClients

	if !haveMultiBufferXDP() {
		delete(spec.Programs, bpf.CollectorProgXdpCountFrags)
	}

	c := &Counters{log: log, pinPath: cfg.PinPath, maxSeed: int(cfg.MaxClients / 2)}
	counters := &clientMaps{capacity: int(cfg.MaxClients), overflow: true, stats: &c.stats}
	proven := &clientMaps{capacity: int(cfg.ProvenClients)}
	c.counters = slotted{names: counterMapNames, content: counters}
	c.proven = slotted{names: provenMapNames, content: proven}
	c.caches = slotted{names: cacheMapNames, content: &lastClients{counters: counters, proven: proven, stats: &c.stats}}
	c.stats.s.MapCapacity = int(cfg.MaxClients)
	var opts ebpf.CollectionOptions
	if cfg.PinPath != "" {
		if err := ensurePinDir(cfg.PinPath); err != nil {
			return nil, err
		}
		specs.Clients.Pinning = ebpf.PinByName
		specs.ProvenClients.Pinning = ebpf.PinByName
		specs.LastClients.Pinning = ebpf.PinByName
		opts.Maps.PinPath = cfg.PinPath
	}
	pinsBefore := existingPins(cfg.PinPath)
	err = c.load(spec, specs.Clients.InnerMap, specs.ProvenClients.InnerMap, specs.LastClients.InnerMap, opts)
	if err != nil {
		// The maps are pinned before the programs are verified: a start
		// that fails must not leave pins of its own behind. Pins of an
		// earlier run stay, with whatever they counted.
		return nil, errors.Join(err, removeNewPins(cfg.PinPath, pinsBefore))
	}
	return c, nil
}

// loadPins are the names Load pins maps under in the pin directory.
var loadPins = []string{bpf.CollectorMapClients, counterMapNames[0], counterMapNames[1],
	bpf.CollectorMapProvenClients, provenMapNames[0], provenMapNames[1],
	bpf.CollectorMapLastClients, cacheMapNames[0], cacheMapNames[1]}

// existingPins returns which of loadPins exist under dir ("" for none).
func existingPins(dir string) map[string]bool {
	found := map[string]bool{}
	if dir == "" {
		return found
	}
	for _, name := range loadPins {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			found[name] = true
		}
	}
	return found
}

// removeNewPins removes the pins of loadPins under dir that are not in
// before.
func removeNewPins(dir string, before map[string]bool) error {
	if dir == "" {
		return nil
	}
	var errs []error
	for _, name := range loadPins {
		if before[name] {
			continue
		}
		err := os.Remove(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove pin of a failed start: %w", err))
		}
	}
	return errors.Join(errs...)
}

// load creates the collection, the counter maps, the proven maps and the
// caches; on failure it has closed what it made.
func (c *Counters) load(spec *ebpf.CollectionSpec, counters, proven, caches *ebpf.MapSpec, opts ebpf.CollectionOptions) error {
	if c.pinPath != "" {
		err := errors.Join(c.counters.dropStaleSlot(c, bpf.CollectorMapClients, counters),
			c.proven.dropStaleSlot(c, bpf.CollectorMapProvenClients, proven),
			c.caches.dropStaleSlot(c, bpf.CollectorMapLastClients, caches))
		if err != nil {
			return err
		}
	}
	err := c.replaceIncompatible(bpf.CollectorMapClients, func() (err error) {
		c.coll, err = ebpf.NewCollectionWithOptions(spec, opts)
		return err
	})
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("load bpf programs: %w (%s)", err, permissionHint())
	}
	if err != nil {
		return fmt.Errorf("load bpf programs: %w", err)
	}
	c.xdp = c.coll.Programs[bpf.CollectorProgXdpCount]
	c.xdpFrag = c.coll.Programs[bpf.CollectorProgXdpCountFrags]
	c.tc = c.coll.Programs[bpf.CollectorProgTcCount]
	c.tcIngress = c.coll.Programs[bpf.CollectorProgTcIngressCount]
	c.counters.slot = c.coll.Maps[bpf.CollectorMapClients]
	c.proven.slot = c.coll.Maps[bpf.CollectorMapProvenClients]
	c.caches.slot = c.coll.Maps[bpf.CollectorMapLastClients]

	err = errors.Join(c.counters.open(c, counters), c.proven.open(c, proven), c.caches.open(c, caches))
	if err != nil {
		c.Close()
		return err
	}
	return nil
}

// haveMultiBufferXDP reports whether the kernel has multi-buffer XDP
// (5.18+), probed through the helper that measures such a frame.
func haveMultiBufferXDP() bool {
	return features.HaveProgramHelper(ebpf.XDP, asm.FnXdpGetBuffLen) == nil
}

// replaceIncompatible runs load; if a pinned map named name has another
// layout (an older release, another MAX_CLIENTS), it moves that pin out of
// the way, a counter map to be carried over (setAside), a slot removed,
// and loads again.
func (c *Counters) replaceIncompatible(name string, load func() error) error {
	err := load()
	if c.pinPath == "" || !errors.Is(err, ebpf.ErrMapIncompatible) {
		return err
	}
	path := filepath.Join(c.pinPath, name)
	if name != bpf.CollectorMapClients && name != bpf.CollectorMapProvenClients {
		if err := c.setAside(path); err != nil {
			return err
		}
		return load()
	}
	c.log.Info("replacing pinned slot of another layout", "pin", path, "reason", err)
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove incompatible pin: %w", err)
	}
	return load()
}

// Drain returns what was counted since the previous Drain and starts a new
// period. A client may appear in more than one Sample.
func (c *Counters) Drain() ([]traffic.Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.stats.drained(time.Now())

	if err := c.settleSpares(); err != nil {
		return nil, err
	}
	if err := c.seedMap(c.counters.maps[1-c.counters.active]); err != nil {
		// Not worth a lost period: the clients are counted all the same,
		// only a flood could push them into the overflow entry.
		c.log.Warn("keep room for recent clients in the counter map", "err", err)
	}
	// Each swap returns once no program can still add to the map it
	// replaces. A program between two swaps counts in a new map and an
	// old one, or moves a cache's counts from an old cache to a new map,
	// or from a new cache to an old map: each increment is in one map,
	// and the old maps are read only after every swap.
	if err := errors.Join(c.counters.swap(), c.proven.swap(), c.caches.swap()); err != nil {
		return nil, err
	}
	if err := c.settleSpares(); err != nil {
		return nil, err
	}
	out := c.held
	c.held = nil
	return out, nil
}

// Seed sets the clients that every counter map gets an entry for before
// it is swapped in, from the next Drain on: new addresses filling the map
// then cannot push them into the overflow entry. Past half the map's
// capacity the rest are left out, so new clients always find room too.
func (c *Counters) Seed(clients []netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seed = c.seed[:0]
	for _, addr := range clients[:min(len(clients), c.maxSeed)] {
		c.seed = append(c.seed, bpf.CollectorClientKey{Addr: addr.As16()})
	}
}

// seedMap adds a zero entry for every seeded client to m, which must be
// out of the slot and cleared. Entries still zero at the next drain are
// read as nothing and cleared with the rest.
func (c *Counters) seedMap(m *ebpf.Map) error {
	if len(c.seed) == 0 {
		return nil
	}
	zeros := make([]bpf.CollectorClientTraffic, len(c.seed))
	_, err := m.BatchUpdate(c.seed, zeros, nil)
	return err
}

// settleSpares empties the maps out of the slots, keeping any counts in
// them that were never returned in c.held. Every spare is read before any
// is cleared: placing what the caches held needs the clients of the
// other maps of their period.
func (c *Counters) settleSpares() error {
	slots := []*slotted{&c.counters, &c.proven, &c.caches}
	var err error
	for _, s := range slots {
		if c.held, err = s.readSpare(c.held); err != nil {
			return err
		}
	}
	for _, s := range slots {
		if err := s.clearSpare(); err != nil {
			return err
		}
	}
	return nil
}

// Peek returns what was counted so far in this period without starting a
// new one. Values may be mid-update; it is for display, not accounting.
//
// It reads the live map an entry at a time, with lookups that take no
// lock. A batch lookup takes each bucket's lock, and on kernels that guard
// it per CPU (seen on 6.1) a program that runs on that CPU meanwhile, in a
// softirq, cannot insert a new client (EBUSY) and counts it in the
// overflow entry: the totals stay exact, the client loses a packet to
// 'other'.
func (c *Counters) Peek() ([]traffic.Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []traffic.Sample
	var err error
	for _, s := range []*slotted{&c.counters, &c.proven, &c.caches} {
		if out, err = s.peek(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Close releases the programs and maps held by this process. Pinned maps
// stay in the kernel with their counts; attached programs keep their own
// references until detached.
func (c *Counters) Close() error {
	err := errors.Join(c.counters.close(), c.proven.close(), c.caches.close())
	if c.coll != nil {
		c.coll.Close()
	}
	return err
}

// batchSize is how many entries one lookup syscall returns; it must exceed
// the longest hash bucket, or the kernel answers ENOSPC.
const batchSize = 4096

func readMap(m *ebpf.Map) ([]bpf.CollectorClientKey, []bpf.CollectorClientTraffic, error) {
	var (
		cursor ebpf.MapBatchCursor
		keys   []bpf.CollectorClientKey
		values []bpf.CollectorClientTraffic
		kbuf   = make([]bpf.CollectorClientKey, batchSize)
		vbuf   = make([]bpf.CollectorClientTraffic, batchSize)
	)
	for {
		n, err := m.BatchLookup(&cursor, kbuf, vbuf, nil)
		keys = append(keys, kbuf[:n]...)
		values = append(values, vbuf[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, values, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// appendSamples appends the non-zero entries as Samples. A client is
// Proven when the datapath marked its entry; the overflow entry's mark
// only says some proven client found no room, and is not passed on.
func appendSamples(out []traffic.Sample, keys []bpf.CollectorClientKey, values []bpf.CollectorClientTraffic) []traffic.Sample {
	for i, k := range keys {
		s := traffic.Sample{Client: clientOf(k), Proven: k != overflowKey && values[i].Flags&flagProven != 0}
		for class, dirs := range values[i].T {
			for dir, t := range dirs {
				s.Traffic[class][dir] = traffic.Tally{Bytes: t.Bytes, Packets: t.Packets}
			}
		}
		if !s.Traffic.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// clientOf returns the client a key of the counter map counts.
func clientOf(k bpf.CollectorClientKey) traffic.Client {
	if k == overflowKey {
		return traffic.Other
	}
	return traffic.ClientOf(netip.AddrFrom16(k.Addr))
}

// ensurePinDir creates the pin directory and checks it is on a bpffs: a
// pin elsewhere fails with an error that does not say why.
func ensurePinDir(dir string) error {
	const hint = "mount it with: mount -t bpf bpf /sys/fs/bpf"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin directory %s (%s): %w", dir, hint, err)
	}
	if err := IsBPFFS(dir); err != nil {
		return fmt.Errorf("pin directory %w; %s", err, hint)
	}
	return nil
}

// IsBPFFS returns nil when path is on a bpffs, else an error naming path:
// pinning anywhere else fails with an error that does not say why.
func IsBPFFS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("%s is not on a bpffs", path)
	}
	return nil
}
