package bpfgo

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/traffic"
)

// TestCacheCountsLikeTheMaps sends the same random traffic through the
// datapath with its cache of the last client and without it: clients in
// bursts and alone, every class, both directions, every entry point, TSO
// and GRO packets, proofs. Every drain must return the same, client by
// client, with the same proven marks.
func TestCacheCountsLikeTheMaps(t *testing.T) {
	cached := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	uncached := loadCounters(t, Config{Ports: traffic.DefaultPorts, uncached: true})
	clients := []netip.Addr{client4, client6, netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8:cafe::9")}
	rng := rand.New(rand.NewPCG(1, 2))

	type send func(c *Counters)
	random := func() send {
		addr := clients[rng.IntN(len(clients))]
		host := host4
		if addr.Is6() {
			host = host6
		}
		var f frame
		switch rng.IntN(4) {
		case 0:
			f = tcpData(host, addr) // proves
		case 1:
			f = quic1RTT(host, addr) // proves
		case 2:
			f = frame{src: host, dst: addr, proto: tcp, sport: 40000, dport: 9981, tcpFlags: tcpACK} // consensus, no proof
		default:
			f = frame{src: host, dst: addr, proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpSYN | tcpACK}
		}
		f.payload += rng.IntN(100)
		segs := uint32(1 + rng.IntN(3))
		switch rng.IntN(4) {
		case 0, 1:
			data := f.build()
			skb := &skbContext{WireLen: segs * uint32(len(data)), GSOSegs: segs, GSOSize: uint32(f.payload)}
			return func(c *Counters) { egress(t, c, data, skb) }
		case 2:
			data := reversed(f).build()
			return func(c *Counters) { ingress(t, c, data) }
		default:
			data := reversed(f).build()
			skb := &skbContext{GSOSegs: segs, GSOSize: uint32(f.payload)}
			return func(c *Counters) {
				if err := runTC(c.tcIngress, data, skb); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	for period := range 20 {
		for range 100 {
			s := random()
			for range 1 + rng.IntN(4) {
				s(cached)
				s(uncached)
			}
		}
		got, want := drainedSamples(t, cached), drainedSamples(t, uncached)
		if len(got) != len(want) {
			t.Fatalf("period %d: %d clients with the cache, %d without", period, len(got), len(want))
		}
		for addr, w := range want {
			if got[addr] != w {
				t.Fatalf("period %d, client %v: %+v with the cache, %+v without", period, addr, got[addr], w)
			}
		}
	}
}

// TestDrainTakesWhatACacheHolds drains while the CPU's cache holds a
// client: what it held is in that drain, not the next, and Peek sees it
// before. The hits and misses reach Stats.
func TestDrainTakesWhatACacheHolds(t *testing.T) {
	onOneCPU(t)
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	data := frame{src: client4, dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 10}.build()

	ingress(t, c, data) // a miss: the client comes into the empty cache
	assertTraffic(t, drained(t, c), map[netip.Addr]traffic.Traffic{client4: one(traffic.Siamux, traffic.Down, len(data))})

	ingress(t, c, data) // a miss: the drain swapped in an empty cache
	ingress(t, c, data) // a hit
	two := one(traffic.Siamux, traffic.Down, len(data))
	two.Add(&two)
	peeked, err := c.Peek()
	if err != nil {
		t.Fatal(err)
	}
	if len(peeked) != 1 || peeked[0].Client.Addr() != client4 || peeked[0].Traffic != two {
		t.Errorf("peek: %+v, want %v with %+v", peeked, client4, two)
	}
	assertTraffic(t, drained(t, c), map[netip.Addr]traffic.Traffic{client4: two})
	assertTraffic(t, drained(t, c), map[netip.Addr]traffic.Traffic{})

	if s := c.Stats(); s.CacheHits != 1 || s.CacheMisses != 2 {
		t.Errorf("cache hits, misses = %d, %d, want 1, 2", s.CacheHits, s.CacheMisses)
	}
}

// TestCacheIsExactAcrossCPUs runs clients in bursts on two CPUs at once,
// in and out, while a drain runs every few milliseconds: each CPU's cache
// keeps changing clients and is swapped out holding one. Summed over the
// drains, every client, class and direction must have exactly what was
// sent. The runners go on until both sent perRunner packets and 20
// drains ran. The clients are seeded, so no packet depends on winning an insert
// (which a kernel may refuse while its own CPU holds a bucket lock:
// EBUSY, and the overflow entry): what is tested is the caches.
func TestCacheIsExactAcrossCPUs(t *testing.T) {
	const runners, numClients = 2, 16
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	perRunner := 400_000
	if testing.Short() {
		perRunner = 40_000
	}
	type packet struct {
		prog   *ebpf.Program
		data   []byte
		client netip.Addr
		class  traffic.Class
		dir    traffic.Direction
	}
	var (
		packets []packet
		seed    []netip.Addr
	)
	for i := range numClients {
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		seed = append(seed, addr)
		answer := tcpData(host4, addr)
		answer.payload += i
		quic := quic1RTT(host4, addr)
		packets = append(packets,
			packet{c.xdp, reversed(answer).build(), addr, traffic.Siamux, traffic.Down},
			packet{c.tc, answer.build(), addr, traffic.Siamux, traffic.Up},
			packet{c.tc, quic.build(), addr, traffic.QUIC, traffic.Up},
			packet{c.xdp, reversed(quic).build(), addr, traffic.QUIC, traffic.Down})
	}
	c.Seed(seed)
	drained(t, c) // the seeded map in the slot
	drained(t, c) // and the other one seeded too

	var (
		want    = map[netip.Addr]traffic.Traffic{}
		wantMu  sync.Mutex
		got     = map[netip.Addr]traffic.Traffic{}
		drains  int
		sent    atomic.Int64 // runners that sent perRunner packets
		stop    atomic.Bool
		wg      sync.WaitGroup
		done    = make(chan struct{})
		errs    = make(chan error, runners)
		collect = func() {
			for addr, tr := range drained(t, c) {
				g := got[addr]
				g.Add(&tr)
				got[addr] = g
			}
			drains++
		}
	)
	for r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := onCPU(r % runtime.NumCPU()); err != nil {
				errs <- err
				return
			}
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			mine := map[netip.Addr]traffic.Traffic{}
			for i, counted := 0, false; !stop.Load(); {
				if i >= perRunner && !counted {
					sent.Add(1)
					counted = true
				}
				p := packets[rng.IntN(len(packets))]
				for range 1 + rng.IntN(6) { // a burst: hits after the first
					if _, err := p.prog.Run(&ebpf.RunOptions{Data: p.data}); err != nil {
						errs <- err
						return
					}
					tr := mine[p.client]
					tr[p.class][p.dir].Add(traffic.Tally{Bytes: uint64(len(p.data)), Packets: 1})
					mine[p.client] = tr
					i++
				}
			}
			wantMu.Lock()
			defer wantMu.Unlock()
			for addr, tr := range mine {
				w := want[addr]
				w.Add(&tr)
				want[addr] = w
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(3 * time.Millisecond):
			collect()
			if drains >= 20 && sent.Load() >= runners {
				stop.Store(true)
			}
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	collect()

	assertTraffic(t, got, want)
	var packetsSent uint64
	for _, tr := range want {
		packetsSent += tr.Packets()
	}
	t.Logf("%d packets on %d CPUs, %d clients, %d drains: exact per client, class and direction", packetsSent, runners, numClients, drains)
}
