package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Forged source addresses come from ranges no lab client uses: the
// benchmarking range 198.18.0.0/15 and 2001:db8:f::/48. Nothing routes
// back to them, so the host's answers, if any, never leave its namespace.
var (
	forgedV4 = netip.MustParseAddr("198.18.0.0")
	forgedV6 = netip.MustParseAddr("2001:db8:f::")
)

// forgeBurst is how many frames Forge sends between checks of its pace.
const forgeBurst = 64

// ForgedAddr is the i-th forged source address Forge uses: even i IPv4,
// odd i IPv6.
func ForgedAddr(i int) netip.Addr {
	if i%2 == 0 {
		b := forgedV4.As4()
		j := uint32(i / 2)
		b[1] += byte(j >> 16 & 1)
		b[2], b[3] = byte(j>>8), byte(j)
		return netip.AddrFrom4(b)
	}
	b := forgedV6.As16()
	binary.BigEndian.PutUint32(b[12:], uint32(i))
	return netip.AddrFrom16(b)
}

// Forged describes frames Forge sends: UDP datagrams of Payload bytes to
// the host's Port, each from a source address of its own (ForgedAddr(First)
// and on), at most PerSecond of them a second: faster, the veth's queues
// overflow and drop the real clients' frames too. Tags are the TPIDs of
// VLAN tags to put in each frame, outermost first (0x8100 802.1Q, 0x88a8
// 802.1ad).
type Forged struct {
	First, Frames int
	Port          uint16
	Payload       int
	PerSecond     int
	Tags          []uint16
}

// Forge sends the frames f describes, as an attacker flooding the host with
// forged addresses would. They are written straight onto the clients' end
// of the veth with an AF_PACKET socket, so no client socket, route or VLAN
// device is involved.
func (l *Lab) Forge(f Forged) error {
	var hostMAC, clientMAC net.HardwareAddr
	err := l.Do(l.HostNS, func() error {
		ifi, err := net.InterfaceByName(l.HostIf)
		if err == nil {
			hostMAC = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("forge: %w", err)
	}
	return l.Do(l.ClientNS, func() error {
		ifi, err := net.InterfaceByName(l.ClientIf)
		if err != nil {
			return fmt.Errorf("forge: %w", err)
		}
		clientMAC = ifi.HardwareAddr
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("forge: socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
		start := time.Now()
		for i := f.First; i < f.First+f.Frames; i++ {
			if sent := i - f.First; sent%forgeBurst == 0 {
				time.Sleep(time.Until(start.Add(time.Duration(sent) * time.Second / time.Duration(f.PerSecond))))
			}
			src := ForgedAddr(i)
			frame := forgedFrame(clientMAC, hostMAC, f.Tags, src, l.HostAddr(src), uint16(40000+i%20000), f.Port, f.Payload)
			for {
				err := unix.Sendto(fd, frame, 0, to)
				if err == unix.ENOBUFS {
					continue // the veth's queue is full: wait for room
				}
				if err != nil {
					return fmt.Errorf("forge: send: %w", err)
				}
				break
			}
		}
		return nil
	})
}

// forgedFrame builds an Ethernet frame, with tags, carrying one UDP
// datagram from src to dst, with a right IPv4 header checksum and no UDP checksum (which
// IPv6 does not allow: the host drops those after counting).
func forgedFrame(from, to net.HardwareAddr, tags []uint16, src, dst netip.Addr, sport, dport uint16, payload int) []byte {
	b := append(append(make([]byte, 0, 64+payload), to...), from...)
	for i, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i)) // the VLAN ID
	}
	udpLen := 8 + payload
	if src.Is4() {
		b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		ip[8], ip[9] = 64, unix.IPPROTO_UDP
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip))
		b = append(b, ip...)
	} else {
		b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IPV6)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6], ip[7] = unix.IPPROTO_UDP, 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		b = append(b, ip...)
	}
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
	b = append(b, 0, 0)
	return append(b, make([]byte, payload)...)
}

// ipv4Checksum is the Internet checksum of an IPv4 header whose checksum
// field is zero.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
