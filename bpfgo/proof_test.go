package bpfgo

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/back2basic/collector/traffic"
)

// drainedSamples drains c and returns the samples by client address; a
// client with entries in both maps appears with both summed, Proven if
// either is.
func drainedSamples(tb testing.TB, c *Counters) map[netip.Addr]traffic.Sample {
	tb.Helper()
	samples, err := c.Drain()
	if err != nil {
		tb.Fatalf("drain: %v", err)
	}
	got := map[netip.Addr]traffic.Sample{}
	for _, s := range samples {
		g := got[s.Client.Addr()]
		g.Client = s.Client
		g.Traffic.Add(&s.Traffic)
		g.Proven = g.Proven || s.Proven
		got[s.Client.Addr()] = g
	}
	return got
}

// The host's answers: a segment with data and ACK set, as on an
// established connection, and a QUIC 1-RTT datagram of full size.
func tcpData(src, dst netip.Addr) frame {
	return frame{src: src, dst: dst, proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpACK, payload: 100}
}

func quic1RTT(src, dst netip.Addr) frame {
	return frame{src: src, dst: dst, proto: udp, sport: 9984, dport: 40000, first: 0x40 | 0x03, payload: 1200}
}

// reversed is f sent the other way.
func reversed(f frame) frame {
	f.src, f.dst, f.sport, f.dport = f.dst, f.src, f.dport, f.sport
	return f
}

// TestProof checks what proves a client: only what the host sends, and of
// that only what a blind forger of the client's address cannot make it
// send.
func TestProof(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	with := func(f frame, edit func(*frame)) frame { edit(&f); return f }

	for _, tc := range []struct {
		name   string
		egress bool
		frame  frame
		skb    *skbContext
		proven bool
	}{
		{"tcp data from host", true, tcpData(host4, client4), nil, true},
		{"tcp data from host, ipv6", true, tcpData(host6, client6), nil, true},
		{"tcp data with FIN and PSH", true, with(tcpData(host4, client4), func(f *frame) { f.tcpFlags |= 0x01 | 0x08 }), nil, true},
		{"tcp data to a peer the host's syncer dialed", true, with(tcpData(host4, client4), func(f *frame) { f.sport, f.dport = 40000, 9981 }), nil, true},
		{"tso super-packet of data", true, tcpData(host4, client4), &skbContext{WireLen: 3 * 154, GSOSegs: 3, GSOSize: 100}, true},
		// What a half-open connection answers an out-of-window segment
		// with: a forger who sent the SYN can make the host send it.
		{"pure ack from host", true, with(tcpData(host4, client4), func(f *frame) { f.payload = 0 }), nil, false},
		{"syn-ack from host", true, with(tcpData(host4, client4), func(f *frame) { f.tcpFlags = tcpSYN | tcpACK }), nil, false},
		{"rst-ack from host", true, with(tcpData(host4, client4), func(f *frame) { f.tcpFlags = tcpRST | tcpACK }), nil, false},
		{"data without ack", true, with(tcpData(host4, client4), func(f *frame) { f.tcpFlags = 0 }), nil, false},
		{"tcp data from client", false, reversed(tcpData(host4, client4)), nil, false},
		{"tcp data from client, ipv6", false, reversed(tcpData(host6, client6)), nil, false},
		{"non-sia tcp data from host", true, with(tcpData(host4, client4), func(f *frame) { f.sport = 443 }), nil, false},

		{"quic 1-rtt from host", true, quic1RTT(host4, client4), nil, true},
		{"quic 1-rtt from host, ipv6", true, quic1RTT(host6, client6), nil, true},
		{"quic 1-rtt of the smallest proving size", true, with(quic1RTT(host4, client4), func(f *frame) { f.payload = 256 }), nil, true},
		{"udp gso of full 1-rtt datagrams", true, quic1RTT(host6, client6), &skbContext{GSOSegs: 2, GSOSize: 600}, true},
		// What quic-go sends before the handshake completes: the
		// NEW_CONNECTION_ID frames, in a small 1-RTT packet.
		{"small quic 1-rtt from host", true, with(quic1RTT(host4, client4), func(f *frame) { f.payload = 255 }), nil, false},
		{"udp gso of small 1-rtt datagrams", true, quic1RTT(host6, client6), &skbContext{GSOSegs: 5, GSOSize: 240}, false},
		{"quic long header (handshake) from host", true, with(quic1RTT(host4, client4), func(f *frame) { f.first = 0xc0 }), nil, false},
		{"udp without the quic fixed bit", true, with(quic1RTT(host4, client4), func(f *frame) { f.first = 0 }), nil, false},
		{"quic 1-rtt from client", false, reversed(quic1RTT(host4, client4)), nil, false},
		{"quic 1-rtt from client, ipv6", false, reversed(quic1RTT(host6, client6)), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.frame.build()
			client := tc.frame.src
			if tc.egress {
				client = tc.frame.dst
				egress(t, c, data, tc.skb)
			} else {
				ingress(t, c, data)
			}
			got := drainedSamples(t, c)
			s, ok := got[client]
			if counted := !strings.HasPrefix(tc.name, "non-sia"); ok != counted {
				t.Fatalf("client counted: %v, want %v (%+v)", ok, counted, got)
			}
			if s.Proven != tc.proven {
				t.Errorf("proven = %v, want %v", s.Proven, tc.proven)
			}
			if tc.egress || tc.proven {
				return
			}
			// Every ingress entry point shares the parser; none proves.
			if c.xdpFrag != nil {
				runXDP(t, c.xdpFrag, data)
			}
			if err := runTC(c.tcIngress, data, nil); err != nil {
				t.Fatal(err)
			}
			if s := drainedSamples(t, c)[client]; s.Proven {
				t.Errorf("proven at ingress: %+v", s)
			}
		})
	}
}

// TestProvenMarkLastsThePeriod: a proven client stays proven in its period
// whatever follows, and starts the next period unproven.
func TestProvenMarkLastsThePeriod(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	egress(t, c, tcpData(host4, client4).build(), nil)
	ingress(t, c, reversed(tcpData(host4, client4)).build())
	egress(t, c, frame{src: host4, dst: client4, proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpRST}.build(), nil)
	if s := drainedSamples(t, c)[client4]; !s.Proven || s.Traffic[traffic.Siamux][traffic.Up].Packets != 2 || s.Traffic[traffic.Siamux][traffic.Down].Packets != 1 {
		t.Fatalf("after proof: %+v, want proven with 2 frames up and 1 down", s)
	}
	ingress(t, c, reversed(tcpData(host4, client4)).build())
	if s := drainedSamples(t, c)[client4]; s.Proven || s.Traffic.IsZero() {
		t.Fatalf("next period: %+v, want counted and unproven", s)
	}
}

// TestProvenClientGetsRoomInAFullMap fills the counter map, then lets a
// late client prove itself: from its proof on its packets are counted
// under its own address in the proven map, and so are those still in a
// CPU's cache of its last client when it proved; before it, the rest
// went to the overflow entry. Here that is all it sent: no other
// client's packet came between its first and its proof, so each of its
// packets was still in a cache. When the proven map is full too, further
// proven clients go to the overflow entry; totals stay exact throughout.
func TestProvenClientGetsRoomInAFullMap(t *testing.T) {
	const maxClients, provenClients = 4, 2
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, MaxClients: maxClients, ProvenClients: provenClients})
	var total traffic.Traffic
	add := func(class traffic.Class, dir traffic.Direction, data []byte) {
		total[class][dir].Add(traffic.Tally{Bytes: uint64(len(data)), Packets: 1})
	}
	in := func(f frame) {
		data := f.build()
		ingress(t, c, data)
		add(classOf(f), traffic.Down, data)
	}
	out := func(f frame) {
		data := f.build()
		egress(t, c, data, nil)
		add(classOf(f), traffic.Up, data)
	}
	forged := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	for i := range maxClients + 3 {
		in(frame{src: forged(i), dst: host4, proto: udp, sport: 40000, dport: 9984, first: 0x40, payload: 1200})
	}
	// The forged clients' handshakes: none proves.
	for i := range maxClients + 3 {
		out(frame{src: host4, dst: forged(i), proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpSYN | tcpACK})
		out(frame{src: host4, dst: forged(i), proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpACK})
		out(frame{src: host4, dst: forged(i), proto: udp, sport: 9984, dport: 40000, first: 0xc0, payload: 1200})
	}

	late := []netip.Addr{client4, client6, netip.MustParseAddr("192.0.2.99")}
	var before, after traffic.Traffic
	for _, addr := range late {
		host := host4
		if addr.Is6() {
			host = host6
		}
		syn := frame{src: addr, dst: host, proto: tcp, sport: 40000, dport: 9984, tcpFlags: tcpSYN}
		synAck := frame{src: host, dst: addr, proto: tcp, sport: 9984, dport: 40000, tcpFlags: tcpSYN | tcpACK}
		request := reversed(tcpData(host, addr))
		in(syn)
		out(synAck)
		in(request)
		if addr == client4 {
			before[traffic.Siamux][traffic.Down].Add(traffic.Tally{Bytes: uint64(len(syn.build()) + len(request.build())), Packets: 2})
			before[traffic.Siamux][traffic.Up].Add(traffic.Tally{Bytes: uint64(len(synAck.build())), Packets: 1})
		}
		// The proof, and what follows it.
		for _, f := range []frame{tcpData(host, addr), quic1RTT(host, addr)} {
			out(f)
			if addr == client4 {
				after[classOf(f)][traffic.Up].Add(traffic.Tally{Bytes: uint64(len(f.build())), Packets: 1})
			}
		}
		in(request)
		if addr == client4 {
			after[traffic.Siamux][traffic.Down].Add(traffic.Tally{Bytes: uint64(len(request.build())), Packets: 1})
		}
	}

	keys, _, err := readMap(c.proven.maps[c.proven.active])
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != provenClients {
		t.Errorf("the proven map holds %d clients, want %d (full)", len(keys), provenClients)
	}
	got := drainedSamples(t, c)
	all := before
	all.Add(&after)
	if s := got[client4]; s.Traffic != all || !s.Proven {
		t.Errorf("late client: %+v, want proven with %+v (all it sent)", s, all)
	}
	if s := got[client6]; !s.Proven {
		t.Errorf("second late client: %+v, want proven", s)
	}
	if s, ok := got[late[2]]; ok {
		t.Errorf("a late client past the proven map's room got an entry: %+v", s)
	}
	var sum traffic.Traffic
	for addr, s := range got {
		sum.Add(&s.Traffic)
		if addr.IsValid() && addr != client4 && addr != client6 && s.Proven {
			t.Errorf("forged client %v proven", addr)
		}
	}
	if sum != total {
		t.Errorf("sum of all entries %+v, want %+v", sum, total)
	}
	if other := got[netip.Addr{}]; other.Proven {
		t.Errorf("the overflow entry is reported proven")
	}

	// The next period: both maps were swapped and the proven map is
	// empty again.
	egress(t, c, tcpData(host4, client4).build(), nil)
	if got := drainedSamples(t, c); !got[client4].Proven || got[client4].Traffic[traffic.Siamux][traffic.Up].Packets != 1 {
		t.Errorf("next period: %+v", got)
	}
}

func classOf(f frame) traffic.Class {
	if f.proto == udp {
		return traffic.QUIC
	}
	return traffic.Siamux
}

// TestStaleSlotIsReplaced pins a slot and counter maps of an older layout
// (without the flags word): the load replaces them, says so, and counts.
func TestStaleSlotIsReplaced(t *testing.T) {
	pins := pinDir(t)
	pinOldLayout(t, pins, 96, DefaultMaxClients+1, [2][]oldEntry{})

	var logs bytes.Buffer
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "replacing pinned slot") {
		t.Errorf("no log line about the replaced slot:\n%s", logs.String())
	}
	data := tcpData(host4, client4).build()
	egress(t, c, data, nil)
	if s := drainedSamples(t, c)[client4]; !s.Proven || s.Traffic != one(traffic.Siamux, traffic.Up, len(data)) {
		t.Errorf("after replacing the old layout: %+v", s)
	}
}
