package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/back2basic/collector/traffic"
	"golang.org/x/sys/unix"
)

const (
	// snapLen is how much of each frame is copied out: all the headers the
	// parser reads. MSG_TRUNC still reports the whole length.
	snapLen = 1024
	// captureBuf is the socket receive buffer. Frames wait there while the
	// reader is descheduled; 64 MiB holds tens of thousands of them.
	captureBuf = 64 << 20
)

// Capture counts every frame crossing the lab's veth with an AF_PACKET
// socket and classifies it with its own parser, as an independent check
// on collector's datapath. Frames the host sends are up, all others down.
//
// A VLAN tag the kernel holds in the skb's metadata (moved there on
// receive, or left there by a VLAN device for the NIC to insert) is put
// back from PACKET_AUXDATA, as tcpdump does: frames are counted as they
// are on the wire, tag included.
type Capture struct {
	iface string
	// sent and received are the directions, seen from the host, of the
	// frames the captured end of the link sends and receives.
	sent, received traffic.Direction
	file           *os.File
	raw            syscall.RawConn
	ports          traffic.Ports
	done           chan struct{} // closed when the reader has drained and exited

	// Owned by the reader until done is closed.
	totals map[netip.Addr]traffic.Traffic
	// fromProof counts each client's frames from the first one the
	// host sent that proves it (proves) on.
	fromProof map[netip.Addr]traffic.Traffic
	ignored   traffic.Tally
	readErr   error

	stopOnce sync.Once
	stopErr  error
}

// Capture starts counting the frames on HostIf, classified with ports.
// Call Stop to end it; a running capture keeps the host namespace alive in
// the kernel.
func (l *Lab) Capture(ports traffic.Ports) (*Capture, error) {
	return l.capture(l.HostNS, l.HostIf, traffic.Up, traffic.Down, ports)
}

// CaptureClientSide counts the same frames on the clients' end of the
// link: as the clients sent them, before GRO on the host merges any.
func (l *Lab) CaptureClientSide(ports traffic.Ports) (*Capture, error) {
	return l.capture(l.ClientNS, l.ClientIf, traffic.Down, traffic.Up, ports)
}

func (l *Lab) capture(ns, dev string, sent, received traffic.Direction, ports traffic.Ports) (*Capture, error) {
	var fd int
	err := l.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		// Protocol 0 receives nothing until bind, so no frame from
		// another interface slips in between socket and bind.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		// SO_RCVBUFFORCE passes the rmem_max cap (CAP_NET_ADMIN).
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuf); err != nil {
			unix.Close(fd)
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("PACKET_AUXDATA: %w", err)
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s in netns %s: %w", dev, ns, err)
	}
	c := &Capture{
		iface:     dev,
		sent:      sent,
		received:  received,
		file:      os.NewFile(uintptr(fd), "packet:"+dev),
		ports:     ports,
		done:      make(chan struct{}),
		totals:    make(map[netip.Addr]traffic.Traffic),
		fromProof: make(map[netip.Addr]traffic.Traffic),
	}
	// Stop relies on a read deadline to wake the reader; that needs the
	// runtime poller, which a non-blocking fd normally gets.
	err = c.file.SetReadDeadline(time.Time{})
	if err == nil {
		c.raw, err = c.file.SyscallConn()
	}
	if err != nil {
		c.file.Close()
		return nil, fmt.Errorf("capture on %s: %w", dev, err)
	}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read counts frames until Stop sets a read deadline, then takes what the
// socket still holds.
func (c *Capture) read() {
	defer close(c.done)
	// The frame goes after room for a VLAN tag, which may be put back.
	buf := make([]byte, vlanTagLen+snapLen)
	oob := make([]byte, unix.CmsgSpace(sizeofAuxdata))
	err := c.raw.Read(func(fd uintptr) bool { return c.drain(int(fd), buf, oob) })
	if c.readErr != nil {
		return
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.readErr = err
		return
	}
	if err := c.raw.Control(func(fd uintptr) { c.drain(int(fd), buf, oob) }); err != nil {
		c.readErr = err
	}
}

const (
	vlanTagLen    = 4
	sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))
)

// drain counts queued frames until the socket is empty (false: wait for
// more) or fails (true, with readErr set).
func (c *Capture) drain(fd int, buf, oob []byte) bool {
	for {
		n, oobn, flags, from, err := unix.Recvmsg(fd, buf[vlanTagLen:], oob, unix.MSG_TRUNC)
		switch {
		case err == unix.EAGAIN:
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			c.readErr = fmt.Errorf("recvmsg: %w", err)
			return true
		}
		dir := c.received
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
			dir = c.sent
		}
		frame := buf[vlanTagLen : vlanTagLen+min(n, snapLen)]
		if flags&unix.MSG_CTRUNC == 0 {
			if tag, ok := metadataTag(oob[:oobn]); ok && len(frame) >= 12 {
				// Put the tag back after the MAC addresses.
				frame = buf[:len(frame)+vlanTagLen]
				copy(frame, frame[vlanTagLen:vlanTagLen+12])
				copy(frame[12:], tag[:])
				n += vlanTagLen
			}
		}
		c.count(frame, n, dir)
	}
}

// metadataTag returns the VLAN tag the kernel held in the skb's metadata,
// as it goes on the wire (TPID, TCI), from the frame's auxiliary data.
func metadataTag(oob []byte) (tag [vlanTagLen]byte, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return tag, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < sizeofAuxdata {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 {
			return tag, false
		}
		tpid := uint16(unix.ETH_P_8021Q)
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = aux.Vlan_tpid
		}
		binary.BigEndian.PutUint16(tag[:], tpid)
		binary.BigEndian.PutUint16(tag[2:], aux.Vlan_tci)
		return tag, true
	}
	return tag, false
}

// count adds one frame of size bytes, of which hdr is the start.
func (c *Capture) count(hdr []byte, size int, dir traffic.Direction) {
	frame := traffic.Tally{Bytes: uint64(size), Packets: 1}
	pk, ok := parse(hdr)
	var class traffic.Class
	if ok {
		class, ok = classify(c.ports, pk, dir)
	}
	if !ok {
		c.ignored.Add(frame)
		return
	}
	client := pk.src
	if dir == traffic.Up {
		client = pk.dst
	}
	t := c.totals[client]
	t[class][dir].Add(frame)
	c.totals[client] = t
	p, proven := c.fromProof[client]
	if proven || dir == traffic.Up && proves(hdr, size, pk, class) {
		p[class][dir].Add(frame)
		c.fromProof[client] = p
	}
}

// FromProof returns, once Stop returned, each client's frames from the
// first frame the host sent it that proves it is real (the datapath's
// rule, written apart from it) on; clients never proven are missing.
// collector's mark lasts one flush period: compare it on exchanges that
// fall in one period.
func (c *Capture) FromProof() map[netip.Addr]traffic.Traffic {
	select {
	case <-c.done:
		return c.fromProof
	default:
		return nil
	}
}

// Stop ends the capture once every frame already queued is counted, and
// returns the totals per client. It fails when the kernel dropped frames
// (the receive buffer was full), so nobody compares against an incomplete
// count. Frames still in flight when Stop is called may be missed: stop
// the traffic first. Later calls return the same result.
func (c *Capture) Stop() (map[netip.Addr]traffic.Traffic, error) {
	c.stopOnce.Do(func() {
		wake := c.file.SetReadDeadline(time.Now())
		if wake != nil {
			c.file.Close() // last resort: the reader ends without draining
		}
		<-c.done
		var stats *unix.TpacketStats
		var serr error
		if err := c.raw.Control(func(fd uintptr) {
			stats, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		}); err != nil {
			serr = err
		}
		switch {
		case serr != nil:
			serr = fmt.Errorf("PACKET_STATISTICS: %w", serr)
		case stats.Drops > 0:
			serr = fmt.Errorf("kernel dropped %d of %d frames", stats.Drops, stats.Packets)
		}
		if err := errors.Join(wake, c.readErr, serr, c.file.Close()); err != nil {
			c.stopErr = fmt.Errorf("capture on %s: %w", c.iface, err)
		}
	})
	return c.totals, c.stopErr
}

// Ignored returns the frames the capture saw but did not count (ARP,
// neighbour discovery, ports of no class). It is zero until Stop returns.
func (c *Capture) Ignored() traffic.Tally {
	select {
	case <-c.done:
		return c.ignored
	default:
		return traffic.Tally{}
	}
}
