package bpfgo

import (
	"encoding/binary"
	"net/netip"
)

// frame describes a test packet; build turns it into wire bytes.
type frame struct {
	src, dst  netip.Addr
	proto     uint8 // 6 TCP, 17 UDP, anything else
	sport     uint16
	dport     uint16
	payload   int
	vlans     int     // 802.1Q/802.1ad tags before the IP header
	ipOptions int     // IPv4 option bytes, a multiple of 4
	fragOff   uint16  // fragment offset in 8-byte units
	v6Ext     []uint8 // IPv6 extension headers in order (0, 43, 44, 51, 60)
	truncate  int     // cut this many bytes off the end
	etherType uint16  // overrides the EtherType when set
	raw       []byte  // used as is when set
	tcpFlags  uint8   // the TCP header's flags byte
	first     byte    // the payload's first byte (a QUIC header's)
}

// TCP flags.
const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

const (
	tcp = 6
	udp = 17
)

func (f frame) build() []byte {
	if f.raw != nil {
		return f.raw
	}
	b := make([]byte, 12, 128) // MAC addresses
	for i := range 12 {
		b[i] = byte(i + 1)
	}
	ethType := uint16(0x0800)
	if f.src.Is6() {
		ethType = 0x86dd
	}
	for i := range f.vlans {
		tpid := uint16(0x8100)
		if i == 0 && f.vlans == 2 {
			tpid = 0x88a8
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i))
	}
	if f.etherType != 0 {
		ethType = f.etherType
	}
	b = binary.BigEndian.AppendUint16(b, ethType)

	l4 := f.l4()
	if f.src.Is4() {
		b = f.appendIPv4(b, len(l4))
	} else {
		b = f.appendIPv6(b, len(l4))
	}
	b = append(b, l4...)
	return b[:len(b)-f.truncate]
}

func (f frame) l4() []byte {
	var h []byte
	h = binary.BigEndian.AppendUint16(h, f.sport)
	h = binary.BigEndian.AppendUint16(h, f.dport)
	switch f.proto {
	case tcp:
		h = append(h, make([]byte, 16)...)
		h[12] = 5 << 4 // data offset
		h[13] = f.tcpFlags
	case udp:
		h = binary.BigEndian.AppendUint16(h, uint16(8+f.payload))
		h = append(h, 0, 0)
	}
	payload := make([]byte, f.payload)
	if f.payload > 0 {
		payload[0] = f.first
	}
	return append(h, payload...)
}

func (f frame) appendIPv4(b []byte, l4len int) []byte {
	hlen := 20 + f.ipOptions
	h := make([]byte, hlen)
	h[0] = 0x40 | byte(hlen/4)
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+l4len))
	binary.BigEndian.PutUint16(h[6:], f.fragOff&0x1fff|0x2000) // MF set
	if f.fragOff == 0 {
		h[6] &^= 0x20 // an unfragmented packet
	}
	h[8] = 64
	h[9] = f.proto
	src, dst := f.src.As4(), f.dst.As4()
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	for i := 20; i < hlen; i++ {
		h[i] = 1 // NOP options
	}
	return append(b, h...)
}

func (f frame) appendIPv6(b []byte, l4len int) []byte {
	next := f.proto
	var ext []byte
	// Build the chain back to front so each header names the next.
	for i := len(f.v6Ext) - 1; i >= 0; i-- {
		var h []byte
		switch f.v6Ext[i] {
		case 44:
			h = make([]byte, 8)
			binary.BigEndian.PutUint16(h[2:], f.fragOff<<3|1)
		case 51: // AH: 16 bytes, its length in 4-byte units less 2
			h = make([]byte, 16)
			h[1] = 16/4 - 2
		default:
			h = make([]byte, 16) // hdrlen 1: 16 bytes
			h[1] = 1
		}
		h[0] = next
		next = f.v6Ext[i]
		ext = append(h, ext...)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(ext)+l4len))
	h[6] = next
	h[7] = 64
	src, dst := f.src.As16(), f.dst.As16()
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	return append(append(b, h...), ext...)
}
