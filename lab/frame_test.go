package lab

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/back2basic/collector/traffic"
)

var (
	v4a = netip.MustParseAddr("10.77.0.2")
	v4b = netip.MustParseAddr("10.77.0.1")
	v6a = netip.MustParseAddr("fd77::2")
	v6b = netip.MustParseAddr("fd77::1")
)

// eth starts a frame with the given ethertypes: VLAN tags first, the
// payload's type last.
func eth(types ...uint16) []byte {
	b := make([]byte, 12)
	for i, t := range types {
		b = binary.BigEndian.AppendUint16(b, t)
		if i < len(types)-1 {
			b = binary.BigEndian.AppendUint16(b, 100) // TCI
		}
	}
	return b
}

// ipv4 is a header with len(opts) bytes of options (a multiple of 4) and
// the flags/fragment-offset field frag.
func ipv4(proto uint8, src, dst netip.Addr, opts []byte, frag uint16) []byte {
	h := make([]byte, 20, 20+len(opts))
	h[0] = 0x40 | uint8((20+len(opts))/4)
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8], h[9] = 64, proto
	copy(h[12:], src.AsSlice())
	copy(h[16:], dst.AsSlice())
	return append(h, opts...)
}

func ipv6(nh uint8, src, dst netip.Addr) []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, nh, 64
	copy(h[8:], src.AsSlice())
	copy(h[24:], dst.AsSlice())
	return h
}

// ext is an IPv6 extension header of 8*(units+1) bytes.
func ext(nh uint8, units int) []byte {
	h := make([]byte, 8*(units+1))
	h[0], h[1] = nh, uint8(units)
	return h
}

// frag6 is an IPv6 fragment header at 8-byte offset off, more fragments
// following.
func frag6(nh uint8, off uint16) []byte {
	h := make([]byte, 8)
	h[0] = nh
	binary.BigEndian.PutUint16(h[2:], off<<3|1)
	return h
}

// l4 is a TCP (20 bytes) or UDP (8 bytes) header.
func l4(proto uint8, sport, dport uint16) []byte {
	h := make([]byte, 8)
	if proto == protoTCP {
		h = make([]byte, 20)
		h[12] = 5 << 4
	}
	binary.BigEndian.PutUint16(h, sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	return h
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParse(t *testing.T) {
	tcp4 := cat(ipv4(protoTCP, v4a, v4b, nil, 0), l4(protoTCP, 40000, 9981))
	want4 := packet{src: v4a, dst: v4b, proto: protoTCP, sport: 40000, dport: 9981}
	udp6 := packet{src: v6a, dst: v6b, proto: protoUDP, sport: 40000, dport: 9984}
	mapped := netip.AddrFrom16(v4a.As16())
	for _, tc := range []struct {
		name  string
		frame []byte
		want  packet // zero: not parsed
	}{
		{"ipv4 tcp", cat(eth(0x0800), tcp4), want4},
		{"ipv4 udp", cat(eth(0x0800), ipv4(protoUDP, v4a, v4b, nil, 0), l4(protoUDP, 1, 2)),
			packet{src: v4a, dst: v4b, proto: protoUDP, sport: 1, dport: 2}},
		{"802.1Q", cat(eth(0x8100, 0x0800), tcp4), want4},
		{"QinQ", cat(eth(0x88a8, 0x8100, 0x0800), tcp4), want4},
		{"three tags", cat(eth(0x88a8, 0x8100, 0x8100, 0x0800), tcp4), packet{}},
		{"ipv4 options", cat(eth(0x0800), ipv4(protoTCP, v4a, v4b, make([]byte, 12), 0), l4(protoTCP, 40000, 9981)), want4},
		{"ipv4 first fragment", cat(eth(0x0800), ipv4(protoTCP, v4a, v4b, nil, 0x2000), l4(protoTCP, 40000, 9981)), want4},
		{"ipv4 later fragment", cat(eth(0x0800), ipv4(protoTCP, v4a, v4b, nil, 0x2000|185), l4(protoTCP, 40000, 9981)), packet{}},
		{"ipv4 last fragment", cat(eth(0x0800), ipv4(protoTCP, v4a, v4b, nil, 185), l4(protoTCP, 40000, 9981)), packet{}},
		{"ipv6 udp", cat(eth(0x86dd), ipv6(protoUDP, v6a, v6b), l4(protoUDP, 40000, 9984)), udp6},
		{"ipv6 ext headers", cat(eth(0x86dd), ipv6(0, v6a, v6b), ext(43, 0), ext(60, 2), ext(protoUDP, 1),
			l4(protoUDP, 40000, 9984)), udp6},
		{"ipv6 first fragment", cat(eth(0x86dd), ipv6(44, v6a, v6b), frag6(protoUDP, 0), l4(protoUDP, 40000, 9984)), udp6},
		{"ipv6 later fragment", cat(eth(0x86dd), ipv6(44, v6a, v6b), frag6(protoUDP, 1), l4(protoUDP, 40000, 9984)), packet{}},
		{"ipv6 six ext headers", cat(eth(0x86dd), ipv6(60, v6a, v6b), ext(60, 0), ext(60, 0), ext(60, 0),
			ext(60, 0), ext(60, 0), ext(protoUDP, 0), l4(protoUDP, 40000, 9984)), udp6},
		{"ipv6 too many ext headers", cat(eth(0x86dd), ipv6(60, v6a, v6b), ext(60, 0), ext(60, 0), ext(60, 0),
			ext(60, 0), ext(60, 0), ext(60, 0), ext(protoUDP, 0), l4(protoUDP, 40000, 9984)), packet{}},
		{"ipv6 v4-mapped", cat(eth(0x86dd), ipv6(protoTCP, mapped, v6b), l4(protoTCP, 40000, 9981)),
			packet{src: v4a, dst: v6b, proto: protoTCP, sport: 40000, dport: 9981}},
		{"icmp", cat(eth(0x0800), ipv4(1, v4a, v4b, nil, 0), make([]byte, 8)), packet{}},
		{"arp", cat(eth(0x0806), make([]byte, 28)), packet{}},
		{"empty", nil, packet{}},
		{"short ethernet", make([]byte, 13), packet{}},
		{"cut vlan tag", cat(eth(0x8100, 0x0800))[:15], packet{}},
		{"cut ipv4", cat(eth(0x0800), tcp4)[:14+19], packet{}},
		{"cut tcp", cat(eth(0x0800), tcp4)[:14+20+19], packet{}},
		{"cut udp", cat(eth(0x86dd), ipv6(protoUDP, v6a, v6b), l4(protoUDP, 1, 2))[:14+40+7], packet{}},
		{"cut ext header", cat(eth(0x86dd), ipv6(0, v6a, v6b), ext(protoUDP, 1))[:14+40+1], packet{}},
		{"ipv4 ihl too small", func() []byte {
			f := cat(eth(0x0800), tcp4)
			f[14] = 0x44
			return f
		}(), packet{}},
		{"version mismatch", cat(eth(0x86dd), tcp4), packet{}},
		{"garbage", []byte("this is not an ethernet frame at all, just text"), packet{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parse(tc.frame)
			got.l4 = 0 // TestProves reads the headers at that offset
			if ok != (tc.want != packet{}) || got != tc.want {
				t.Errorf("parse = %+v, %v; want %+v", got, ok, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	custom := traffic.Ports{Consensus: []uint16{19981, 29981}, Siamux: []uint16{19984}, QUIC: []uint16{19985}}
	const none = traffic.NumClasses
	for _, tc := range []struct {
		name         string
		ports        traffic.Ports
		proto        uint8
		sport, dport uint16
		dir          traffic.Direction
		want         traffic.Class
	}{
		{"consensus in, down", traffic.DefaultPorts, protoTCP, 40000, 9981, traffic.Down, traffic.Consensus},
		{"consensus in, up", traffic.DefaultPorts, protoTCP, 9981, 40000, traffic.Up, traffic.Consensus},
		{"consensus out, up", traffic.DefaultPorts, protoTCP, 40000, 9981, traffic.Up, traffic.Consensus},
		{"consensus out, down", traffic.DefaultPorts, protoTCP, 9981, 40000, traffic.Down, traffic.Consensus},
		{"siamux, down", traffic.DefaultPorts, protoTCP, 40000, 9984, traffic.Down, traffic.Siamux},
		{"siamux, up", traffic.DefaultPorts, protoTCP, 9984, 40000, traffic.Up, traffic.Siamux},
		{"remote siamux port", traffic.DefaultPorts, protoTCP, 9984, 40000, traffic.Down, none},
		{"local siamux beats remote consensus", traffic.DefaultPorts, protoTCP, 9981, 9984, traffic.Down, traffic.Siamux},
		{"quic, down", traffic.DefaultPorts, protoUDP, 40000, 9984, traffic.Down, traffic.QUIC},
		{"quic, up", traffic.DefaultPorts, protoUDP, 9984, 40000, traffic.Up, traffic.QUIC},
		{"remote quic port", traffic.DefaultPorts, protoUDP, 40000, 9984, traffic.Up, none},
		{"udp consensus port", traffic.DefaultPorts, protoUDP, 40000, 9981, traffic.Down, none},
		{"tcp 8080", traffic.DefaultPorts, protoTCP, 40000, 8080, traffic.Down, none},
		{"custom second consensus port", custom, protoTCP, 40000, 29981, traffic.Down, traffic.Consensus},
		{"custom siamux", custom, protoTCP, 19984, 40000, traffic.Up, traffic.Siamux},
		{"custom quic", custom, protoUDP, 40000, 19985, traffic.Down, traffic.QUIC},
		{"default port under custom config", custom, protoTCP, 40000, 9981, traffic.Down, none},
		{"no ports", traffic.Ports{}, protoTCP, 40000, 9981, traffic.Down, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := classify(tc.ports, packet{proto: tc.proto, sport: tc.sport, dport: tc.dport}, tc.dir)
			if !ok {
				got = none
			}
			if got != tc.want {
				t.Errorf("classify = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCount checks that the client is the remote end in both directions and
// that sizes come from the frame length, not the bytes read.
func TestCount(t *testing.T) {
	c := &Capture{ports: traffic.DefaultPorts, totals: make(map[netip.Addr]traffic.Traffic)}
	c.count(cat(eth(0x0800), ipv4(protoTCP, v4a, v4b, nil, 0), l4(protoTCP, 40000, 9981)), 1514, traffic.Down)
	c.count(cat(eth(0x0800), ipv4(protoTCP, v4b, v4a, nil, 0), l4(protoTCP, 9981, 40000)), 66, traffic.Up)
	c.count(cat(eth(0x86dd), ipv6(protoUDP, v6b, v6a), l4(protoUDP, 9984, 40000)), 1200, traffic.Up)
	c.count(cat(eth(0x0806), make([]byte, 28)), 42, traffic.Down)

	var want4, want6 traffic.Traffic
	want4[traffic.Consensus][traffic.Down] = traffic.Tally{Bytes: 1514, Packets: 1}
	want4[traffic.Consensus][traffic.Up] = traffic.Tally{Bytes: 66, Packets: 1}
	want6[traffic.QUIC][traffic.Up] = traffic.Tally{Bytes: 1200, Packets: 1}
	if len(c.totals) != 2 || c.totals[v4a] != want4 || c.totals[v6a] != want6 {
		t.Errorf("totals = %v, want %v: %v and %v: %v", c.totals, v4a, want4, v6a, want6)
	}
	if c.ignored != (traffic.Tally{Bytes: 42, Packets: 1}) {
		t.Errorf("ignored = %+v, want the ARP frame", c.ignored)
	}
}

func TestSpecDefaults(t *testing.T) {
	l := &Lab{MTU: 1500, ClientAddrs: []netip.Addr{v4a, v6a}}
	s, err := Spec{}.withDefaults(l)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rounds != 1 || len(s.Clients) != 2 || s.Ports.Consensus[0] != 9981 || s.OtherTCP != 8080 {
		t.Errorf("defaults = %+v", s)
	}
	for _, bad := range []Spec{{DatagramUp: 1453}, {StreamDown: -1}, {Rounds: -2}, {Interval: -1}} {
		if _, err := bad.withDefaults(l); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
