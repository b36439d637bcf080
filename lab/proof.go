package lab

import "github.com/back2basic/collector/traffic"

// The proof rule of the README's "Under a flood", written apart from the
// datapath's as a second opinion.
const (
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagACK = 0x10
	// quicProofMinPayload is the smallest QUIC 1-RTT datagram, in UDP
	// payload bytes, that proves its client.
	quicProofMinPayload = 256
)

// proves reports whether a frame the host sent, of size bytes of which b
// is the start, proves that its client is real: TCP data with ACK and
// neither SYN nor RST, or a QUIC short-header datagram of at least
// quicProofMinPayload bytes.
func proves(b []byte, size int, pk packet, class traffic.Class) bool {
	if class == traffic.QUIC {
		first := pk.l4 + 8
		return len(b) > first && size-first >= quicProofMinPayload && b[first]&0xc0 == 0x40
	}
	if len(b) < pk.l4+14 {
		return false
	}
	hlen, flags := int(b[pk.l4+12]>>4)*4, b[pk.l4+13]
	return flags&(tcpFlagACK|tcpFlagSYN|tcpFlagRST) == tcpFlagACK && size > pk.l4+hlen
}
