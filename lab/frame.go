package lab

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/back2basic/collector/traffic"
)

// IP protocol numbers the classifier and parser care about.
const (
	protoTCP = 6
	protoUDP = 17
)

// classify applies collector's rules, with ports p, to a packet seen in
// direction dir. It is written apart from the datapath's on purpose, as a
// second opinion. The local (host) port decides first, so a peer that uses
// a Sia port as its source cannot move the host's own services between
// classes; the remote consensus port catches the host's outbound syncer
// connections.
func classify(p traffic.Ports, pk packet, dir traffic.Direction) (traffic.Class, bool) {
	local, remote := pk.dport, pk.sport
	if dir == traffic.Up {
		local, remote = remote, local
	}
	switch pk.proto {
	case protoTCP:
		switch {
		case slices.Contains(p.Consensus, local):
			return traffic.Consensus, true
		case slices.Contains(p.Siamux, local):
			return traffic.Siamux, true
		case slices.Contains(p.Consensus, remote):
			return traffic.Consensus, true
		}
	case protoUDP:
		if slices.Contains(p.QUIC, local) {
			return traffic.QUIC, true
		}
	}
	return 0, false
}

// packet is what classification needs from a frame.
type packet struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	l4           int // the TCP or UDP header's offset in the frame
}

// Parser limits. They mirror the datapath's, so both give up on the same
// frames: a frame the datapath does not count must not be counted here.
const (
	maxVLANTags    = 2 // 802.1Q and 802.1ad (QinQ)
	maxIPv6ExtHdrs = 6
)

// parse extracts addresses and ports from an Ethernet frame. It reports
// false for anything that is not TCP or UDP over IP with both ports
// present: other protocols, truncated headers, and IP fragments other than
// the first, whose ports are in an earlier fragment.
func parse(b []byte) (packet, bool) {
	if len(b) < 14 {
		return packet{}, false
	}
	etype, off := binary.BigEndian.Uint16(b[12:]), 14
	for tags := 0; etype == 0x8100 || etype == 0x88a8; tags++ {
		if tags == maxVLANTags || len(b) < off+4 {
			return packet{}, false
		}
		etype, off = binary.BigEndian.Uint16(b[off+2:]), off+4
	}
	var pk packet
	switch etype {
	case 0x0800:
		ip := b[off:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return packet{}, false
		}
		ihl := int(ip[0]&0x0f) * 4
		if ihl < 20 || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return packet{}, false
		}
		pk.proto = ip[9]
		pk.src = netip.AddrFrom4([4]byte(ip[12:16]))
		pk.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		off += ihl
	case 0x86dd:
		ip := b[off:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return packet{}, false
		}
		// A v4-mapped source stands for the IPv4 client, as it does in
		// the datapath's 16-byte keys.
		pk.src = netip.AddrFrom16([16]byte(ip[8:24])).Unmap()
		pk.dst = netip.AddrFrom16([16]byte(ip[24:40])).Unmap()
		var ok bool
		if pk.proto, off, ok = skipIPv6Ext(b, ip[6], off+40); !ok {
			return packet{}, false
		}
	default:
		return packet{}, false
	}
	need := 8 // UDP header
	switch pk.proto {
	case protoTCP:
		need = 20
	case protoUDP:
	default:
		return packet{}, false
	}
	if len(b) < off+need {
		return packet{}, false
	}
	pk.sport = binary.BigEndian.Uint16(b[off:])
	pk.dport = binary.BigEndian.Uint16(b[off+2:])
	pk.l4 = off
	return pk, true
}

// skipIPv6Ext walks the extension headers the datapath walks, starting
// with next header nh at offset off, and returns the upper-layer protocol
// and its offset.
func skipIPv6Ext(b []byte, nh uint8, off int) (uint8, int, bool) {
	for hdrs := 0; ; hdrs++ {
		var size int
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < off+2 {
				return 0, 0, false
			}
			size = (int(b[off+1]) + 1) * 8
		case 44: // fragment: fixed size, offset in the top 13 bits
			if len(b) < off+8 || binary.BigEndian.Uint16(b[off+2:])&0xfff8 != 0 {
				return 0, 0, false
			}
			size = 8
		default:
			return nh, off, true
		}
		if hdrs == maxIPv6ExtHdrs {
			return 0, 0, false
		}
		nh, off = b[off], off+size
	}
}
