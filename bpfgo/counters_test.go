package bpfgo

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/traffic"
)

var (
	host4   = netip.MustParseAddr("10.0.0.1")
	client4 = netip.MustParseAddr("198.51.100.7")
	host6   = netip.MustParseAddr("2001:db8::1")
	client6 = netip.MustParseAddr("2001:db8:beef::7")
)

const (
	xdpPass     = 2
	tcActUnspec = 0xffffffff // TC_ACT_UNSPEC (-1), which is also TCX_NEXT
)

// skbContext is the start of struct __sk_buff (UAPI, fixed offsets) as
// PROG_TEST_RUN takes it: only wire_len, gso_segs and gso_size are set.
type skbContext struct {
	_       [160]byte
	WireLen uint32
	GSOSegs uint32
	_       [8]byte
	GSOSize uint32
	_       [12]byte
}

func loadCounters(tb testing.TB, cfg Config) *Counters {
	tb.Helper()
	kerneltest.RequireRoot(tb)
	c, err := Load(cfg)
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// ingress runs the single-buffer XDP program on data as if it arrived.
func ingress(tb testing.TB, c *Counters, data []byte) {
	tb.Helper()
	runXDP(tb, c.xdp, data)
}

func runXDP(tb testing.TB, prog *ebpf.Program, data []byte) {
	tb.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: data})
	if err != nil {
		tb.Fatalf("run xdp: %v", err)
	}
	if ret != xdpPass {
		tb.Fatalf("xdp returned %d, want XDP_PASS", ret)
	}
}

// egress runs the TC program on data as if it left; skb may be nil.
func egress(tb testing.TB, c *Counters, data []byte, skb *skbContext) {
	tb.Helper()
	if err := runTC(c.tc, data, skb); err != nil {
		tb.Fatal(err)
	}
}

// runTC runs a TC program on data; skb may be nil.
func runTC(prog *ebpf.Program, data []byte, skb *skbContext) error {
	opts := &ebpf.RunOptions{Data: data}
	if skb != nil {
		opts.Context = *skb
	}
	ret, err := prog.Run(opts)
	if err != nil {
		return fmt.Errorf("run tc: %w", err)
	}
	if ret != tcActUnspec {
		return fmt.Errorf("tc returned %#x, want TC_ACT_UNSPEC", ret)
	}
	return nil
}

// drained drains c and sums the samples per client address; the overflow
// entry, traffic.Other, is keyed by its Addr, the zero Addr.
func drained(tb testing.TB, c *Counters) map[netip.Addr]traffic.Traffic {
	tb.Helper()
	samples, err := c.Drain()
	if err != nil {
		tb.Fatalf("drain: %v", err)
	}
	got := map[netip.Addr]traffic.Traffic{}
	for _, s := range samples {
		t := got[s.Client.Addr()]
		t.Add(&s.Traffic)
		got[s.Client.Addr()] = t
	}
	return got
}

// one is the Traffic of a single frame of n bytes.
func one(class traffic.Class, dir traffic.Direction, n int) traffic.Traffic {
	var t traffic.Traffic
	t[class][dir] = traffic.Tally{Bytes: uint64(n), Packets: 1}
	return t
}

func TestClassification(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})

	in4 := func(proto uint8, sport, dport uint16) frame {
		return frame{src: client4, dst: host4, proto: proto, sport: sport, dport: dport, payload: 100}
	}
	out4 := func(proto uint8, sport, dport uint16) frame {
		return frame{src: host4, dst: client4, proto: proto, sport: sport, dport: dport, payload: 100}
	}
	in6 := func(proto uint8, sport, dport uint16) frame {
		return frame{src: client6, dst: host6, proto: proto, sport: sport, dport: dport, payload: 100}
	}
	out6 := func(proto uint8, sport, dport uint16) frame {
		return frame{src: host6, dst: client6, proto: proto, sport: sport, dport: dport, payload: 100}
	}
	with := func(f frame, edit func(*frame)) frame { edit(&f); return f }

	for _, tc := range []struct {
		name    string
		egress  bool
		frame   frame
		client  netip.Addr
		class   traffic.Class
		counted bool
	}{
		{"consensus in, peer dials host", false, in4(tcp, 40000, 9981), client4, traffic.Consensus, true},
		{"consensus out, host answers peer", true, out4(tcp, 9981, 40000), client4, traffic.Consensus, true},
		{"consensus out, host's syncer dials peer", true, out4(tcp, 40000, 9981), client4, traffic.Consensus, true},
		{"consensus in, peer answers host's syncer", false, in4(tcp, 9981, 40000), client4, traffic.Consensus, true},
		{"siamux in", false, in4(tcp, 40000, 9984), client4, traffic.Siamux, true},
		{"siamux out", true, out4(tcp, 9984, 40000), client4, traffic.Siamux, true},
		{"quic in", false, in4(udp, 40000, 9984), client4, traffic.QUIC, true},
		{"quic out", true, out4(udp, 9984, 40000), client4, traffic.QUIC, true},
		{"ipv6 consensus in", false, in6(tcp, 40000, 9981), client6, traffic.Consensus, true},
		{"ipv6 consensus out to peer", true, out6(tcp, 40000, 9981), client6, traffic.Consensus, true},
		{"ipv6 siamux in", false, in6(tcp, 40000, 9984), client6, traffic.Siamux, true},
		{"ipv6 siamux out", true, out6(tcp, 9984, 40000), client6, traffic.Siamux, true},
		{"ipv6 quic in", false, in6(udp, 40000, 9984), client6, traffic.QUIC, true},
		{"ipv6 quic out", true, out6(udp, 9984, 40000), client6, traffic.QUIC, true},
		{"vlan tagged", false, with(in4(tcp, 40000, 9984), func(f *frame) { f.vlans = 1 }), client4, traffic.Siamux, true},
		{"double vlan tagged", true, with(out6(udp, 9984, 40000), func(f *frame) { f.vlans = 2 }), client6, traffic.QUIC, true},
		{"ipv4 options", false, with(in4(tcp, 40000, 9981), func(f *frame) { f.ipOptions = 40 }), client4, traffic.Consensus, true},
		{"ipv4 first fragment", false, with(in4(udp, 40000, 9984), func(f *frame) { f.fragOff = 0 }), client4, traffic.QUIC, true},
		{"ipv6 extension headers", false, with(in6(tcp, 40000, 9984), func(f *frame) { f.v6Ext = []uint8{0, 43, 60} }), client6, traffic.Siamux, true},
		{"ipv6 AH", false, with(in6(udp, 40000, 9984), func(f *frame) { f.v6Ext = []uint8{51} }), client6, traffic.QUIC, true},
		{"ipv6 longest RFC 8200 chain and one more", true, with(out6(tcp, 9984, 40000), func(f *frame) { f.v6Ext = []uint8{0, 60, 43, 44, 51, 60, 60, 60} }), client6, traffic.Siamux, true},
		{"ipv6 first fragment", true, with(out6(udp, 9984, 40000), func(f *frame) { f.v6Ext = []uint8{0, 44} }), client6, traffic.QUIC, true},

		{"ipv4 non-first fragment", false, with(in4(udp, 40000, 9984), func(f *frame) { f.fragOff = 185 }), client4, 0, false},
		{"ipv6 non-first fragment", false, with(in6(udp, 40000, 9984), func(f *frame) { f.v6Ext = []uint8{44}; f.fragOff = 185 }), client6, 0, false},
		{"ipv6 too many extension headers", false, with(in6(tcp, 40000, 9984), func(f *frame) { f.v6Ext = []uint8{0, 60, 43, 60, 43, 60, 60, 60, 60} }), client6, 0, false},
		{"non-sia tcp in", false, in4(tcp, 40000, 443), client4, 0, false},
		{"non-sia tcp out", true, out4(tcp, 22, 40000), client4, 0, false},
		{"siamux port on the remote side", false, in4(tcp, 9984, 40000), client4, 0, false},
		{"quic port over tcp is siamux, consensus port over udp is nothing", false, in4(udp, 40000, 9981), client4, 0, false},
		{"other l4 protocol", false, in4(1, 0, 0), client4, 0, false},
		{"arp", false, with(in4(tcp, 40000, 9984), func(f *frame) { f.etherType = 0x0806 }), client4, 0, false},
		{"truncated ports", false, with(in4(tcp, 40000, 9984), func(f *frame) { f.payload = 0; f.truncate = 18 }), client4, 0, false},
		{"truncated ports at egress", true, with(out6(tcp, 9984, 40000), func(f *frame) { f.payload = 0; f.truncate = 18 }), client6, 0, false},
		{"truncated ip header", false, with(in6(tcp, 9984, 40000), func(f *frame) { f.payload = 0; f.truncate = 40 }), client6, 0, false},
		{"ethernet header only", false, frame{raw: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00}}, client4, 0, false},
		{"garbage ipv4", false, frame{raw: append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x41}, make([]byte, 60)...)}, client4, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.frame.build()
			dir := traffic.Down
			if tc.egress {
				dir = traffic.Up
			}
			want := map[netip.Addr]traffic.Traffic{}
			if tc.counted {
				want[tc.client] = one(tc.class, dir, len(data))
			}
			check := func() {
				t.Helper()
				assertTraffic(t, drained(t, c), want)
				if !tc.counted {
					assertNoEntries(t, c)
				}
			}
			if tc.egress {
				egress(t, c, data, nil)
				check()
				return
			}
			// Every ingress entry point shares the parser; check each.
			ingress(t, c, data)
			check()
			if c.xdpFrag != nil {
				runXDP(t, c.xdpFrag, data)
				check()
			}
			// PROG_TEST_RUN refuses skbs without a whole IP header.
			if err := runTC(c.tcIngress, data, nil); !errors.Is(err, unix.EINVAL) {
				if err != nil {
					t.Fatal(err)
				}
				check()
			}
		})
	}
}

// assertNoEntries checks that both counter maps hold nothing but the
// overflow entry: traffic that is not Sia's must not create entries.
func assertNoEntries(t *testing.T, c *Counters) {
	t.Helper()
	for _, m := range c.counters.maps {
		keys, _, err := readMap(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0] != overflowKey {
			t.Fatalf("counter map has %d entries, want only the overflow entry", len(keys))
		}
	}
}

func assertTraffic(t *testing.T, got, want map[netip.Addr]traffic.Traffic) {
	t.Helper()
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("client %v: got %+v, want %+v", addr, got[addr], w)
		}
	}
	for addr, g := range got {
		if _, ok := want[addr]; !ok {
			t.Errorf("unexpected client %v: %+v", addr, g)
		}
	}
}

func TestEgressGSOCountsWireFrames(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	data := frame{src: host4, dst: client4, proto: tcp, sport: 9984, dport: 40000, payload: 1000}.build()
	// Three segments of 1000 payload bytes, each with its own 54-byte
	// Ethernet+IP+TCP header: 3054 bytes are what the wire carries.
	const segs, wire = 3, 3 * 1054
	egress(t, c, data, &skbContext{WireLen: wire, GSOSegs: segs, GSOSize: 1000})

	var want traffic.Traffic
	want[traffic.Siamux][traffic.Up] = traffic.Tally{Bytes: wire, Packets: segs}
	assertTraffic(t, drained(t, c), map[netip.Addr]traffic.Traffic{client4: want})
}

// TestIngressGROCountsWireFrames gives the TC ingress program what GRO
// makes of several frames: one skb with gso_segs. Each frame had its own
// Ethernet, IP and TCP or UDP header.
func TestIngressGROCountsWireFrames(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	for _, tc := range []struct {
		name   string
		frame  frame
		class  traffic.Class
		header int
	}{
		{"tcp over ipv4", frame{src: client4, dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 3000}, traffic.Siamux, 14 + 20 + 20},
		{"udp over ipv6", frame{src: client6, dst: host6, proto: udp, sport: 40000, dport: 9984, payload: 3000}, traffic.QUIC, 14 + 40 + 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const segs = 3
			data := tc.frame.build()
			if err := runTC(c.tcIngress, data, &skbContext{GSOSegs: segs, GSOSize: 1000}); err != nil {
				t.Fatal(err)
			}
			var want traffic.Traffic
			want[tc.class][traffic.Down] = traffic.Tally{Bytes: uint64(len(data) + (segs-1)*tc.header), Packets: segs}
			assertTraffic(t, drained(t, c), map[netip.Addr]traffic.Traffic{tc.frame.src: want})
		})
	}
}

func TestCustomPortSets(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.Ports{Consensus: []uint16{7000, 7001}, Siamux: []uint16{7002}, QUIC: []uint16{7001, 7003}}})
	var want traffic.Traffic
	var frames [][]byte
	for _, f := range []struct {
		proto uint8
		port  uint16
		class traffic.Class
	}{{tcp, 7000, traffic.Consensus}, {tcp, 7001, traffic.Consensus}, {tcp, 7002, traffic.Siamux}, {udp, 7001, traffic.QUIC}, {udp, 7003, traffic.QUIC}} {
		data := frame{src: client4, dst: host4, proto: f.proto, sport: 50000, dport: f.port, payload: 10}.build()
		frames = append(frames, data)
		want[f.class][traffic.Down].Add(traffic.Tally{Bytes: uint64(len(data)), Packets: 1})
	}
	// The defaults are not in these sets.
	frames = append(frames, frame{src: client4, dst: host4, proto: tcp, sport: 50000, dport: 9984}.build())
	for _, data := range frames {
		ingress(t, c, data)
	}
	assertTraffic(t, drained(t, c), map[netip.Addr]traffic.Traffic{client4: want})
}

func TestFullMapCountsInOverflow(t *testing.T) {
	const maxClients, clients = 4, 10
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, MaxClients: maxClients})
	var total traffic.Tally
	for i := range clients {
		data := frame{src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: i}.build()
		ingress(t, c, data)
		total.Add(traffic.Tally{Bytes: uint64(len(data)), Packets: 1})
	}
	got := drained(t, c)
	if len(got) != maxClients+1 {
		t.Fatalf("got %d entries, want %d clients and the overflow entry", len(got), maxClients)
	}
	var sum traffic.Tally
	for _, tr := range got {
		sum.Add(tr[traffic.Siamux][traffic.Down])
	}
	if sum != total {
		t.Fatalf("sum over clients and overflow = %+v, want %+v", sum, total)
	}
	if got[netip.Addr{}][traffic.Siamux][traffic.Down].Packets != clients-maxClients {
		t.Fatalf("overflow took %d packets, want %d", got[netip.Addr{}][traffic.Siamux][traffic.Down].Packets, clients-maxClients)
	}
	// The next period starts empty, with room for new clients again.
	ingress(t, c, frame{src: client4, dst: host4, proto: tcp, sport: 1, dport: 9981}.build())
	if got := drained(t, c); len(got) != 1 || got[client4].IsZero() {
		t.Fatalf("after drain: %+v, want one entry for %v", got, client4)
	}
}

func TestRejectsBadPortSets(t *testing.T) {
	for name, p := range map[string]traffic.Ports{
		"overlapping tcp sets": {Consensus: []uint16{9981, 9984}, Siamux: []uint16{9984}},
		"port zero":            {Consensus: []uint16{0}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := portFlags(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestSeededClientsKeepTheirPlace fills the map with new addresses after
// seeding it with a known client: the known client is still counted under
// its own address, and only half the map is ever seeded.
func TestSeededClientsKeepTheirPlace(t *testing.T) {
	const maxClients = 4
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, MaxClients: maxClients})
	forged := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	c.Seed([]netip.Addr{client4, client6, forged(200)}) // the third is past half the map
	drained(t, c)                                       // swaps the seeded map in

	for i := range 10 {
		ingress(t, c, frame{src: forged(i), dst: host4, proto: udp, sport: 40000, dport: 9984, payload: 100}.build())
	}
	known := frame{src: client4, dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 10}.build()
	ingress(t, c, known)
	got := drained(t, c)
	if want := one(traffic.Siamux, traffic.Down, len(known)); got[client4] != want {
		t.Errorf("the seeded client got %+v, want %+v under its own address", got[client4], want)
	}
	if _, ok := got[client6]; ok {
		t.Errorf("a seeded client that sent nothing shows up: %+v", got[client6])
	}
	// Two seeded entries leave two of four places to the flood.
	forgedRows := 0
	for addr := range got {
		if addr.IsValid() && addr != client4 {
			forgedRows++
		}
	}
	if forgedRows != maxClients-2 || got[netip.Addr{}][traffic.QUIC][traffic.Down].Packets != 10-(maxClients-2) {
		t.Errorf("%d forged clients got rows and the overflow %d packets; want %d and %d", forgedRows,
			got[netip.Addr{}][traffic.QUIC][traffic.Down].Packets, maxClients-2, 10-(maxClients-2))
	}
}

// onCPU keeps the calling thread, which the caller locked to its
// goroutine, on cpu.
func onCPU(cpu int) error {
	var cpus unix.CPUSet
	cpus.Set(cpu)
	return unix.SchedSetaffinity(0, &cpus)
}

// onOneCPU keeps the test on one CPU until it ends, so every program run
// goes through the same CPU's caches of the last client.
func onOneCPU(tb testing.TB) {
	tb.Helper()
	runtime.LockOSThread()
	var before, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		tb.Fatal(err)
	}
	for cpu := 0; one.Count() == 0; cpu++ {
		if before.IsSet(cpu) {
			one.Set(cpu)
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		unix.SchedSetaffinity(0, &before)
		runtime.UnlockOSThread()
	})
}
