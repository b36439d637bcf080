package lab

import (
	"testing"

	"github.com/back2basic/collector/traffic"
)

func TestProves(t *testing.T) {
	tcpSeg := func(flags byte, payload int) []byte {
		h := make([]byte, 20+payload)
		h[0], h[1], h[2], h[3] = 0x26, 0xc0, 0x9c, 0x40 // 9920 -> 40000, as the host answers
		h[12], h[13] = 5<<4, flags
		return h
	}
	udpDgram := func(first byte, payload int) []byte {
		h := make([]byte, 8+payload)
		h[8] = first
		return h
	}
	for _, tc := range []struct {
		name  string
		l4    []byte
		class traffic.Class
		want  bool
	}{
		{"tcp data", tcpSeg(tcpFlagACK|0x08, 100), traffic.Siamux, true},
		{"tcp pure ack", tcpSeg(tcpFlagACK, 0), traffic.Siamux, false},
		{"tcp syn-ack with data", tcpSeg(tcpFlagSYN|tcpFlagACK, 100), traffic.Siamux, false},
		{"tcp rst-ack with data", tcpSeg(tcpFlagRST|tcpFlagACK, 100), traffic.Consensus, false},
		{"quic 1-rtt, full", udpDgram(0x41, 1200), traffic.QUIC, true},
		{"quic 1-rtt, 256 bytes", udpDgram(0x41, 256), traffic.QUIC, true},
		{"quic 1-rtt, 255 bytes", udpDgram(0x41, 255), traffic.QUIC, false},
		{"quic long header", udpDgram(0xc3, 1200), traffic.QUIC, false},
		{"udp without the fixed bit", udpDgram(0x01, 1200), traffic.QUIC, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proto := uint8(protoTCP)
			if tc.class == traffic.QUIC {
				proto = protoUDP
			}
			// Over IPv4 with options, and over IPv6 with an extension
			// header: the TCP or UDP header is found past either.
			for _, b := range [][]byte{
				cat(eth(0x0800), ipv4(proto, v4b, v4a, make([]byte, 8), 0), tc.l4),
				cat(eth(0x8100, 0x86dd), ipv6(60, v6b, v6a), ext(proto, 1), tc.l4),
			} {
				pk, ok := parse(b)
				if !ok {
					t.Fatal("not parsed")
				}
				if got := proves(b, len(b), pk, tc.class); got != tc.want {
					t.Errorf("proves = %v, want %v (%d-byte frame)", got, tc.want, len(b))
				}
			}
		})
	}
}
