package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// StreamSpec is one bulk TCP stream from a client to the host.
type StreamSpec struct {
	Client netip.Addr    // one of ClientAddrs
	Port   uint16        // the host's port
	Limit  int64         // bytes to send at most
	For    time.Duration // how long to send at most
	// Rate, when not 0, paces the sender to at most this many bytes a
	// second (SO_MAX_PACING_RATE). Below what the host takes in, no
	// frame is dropped at the host's end of the veth for want of room,
	// so a capture on the clients' end sees only frames the host gets.
	Rate uint64
}

// Streamed is what one bulk stream moved.
type Streamed struct {
	Bytes   int64         // payload the host read
	Elapsed time.Duration // from the host's accept to the last byte read
}

// streamChunk is how much the client hands the kernel per write.
const streamChunk = 1 << 20

// Stream sends one bulk TCP stream, as a renter uploading to a host does,
// and returns once the connection is fully closed: every frame of it has
// crossed the link. Throughput is Bytes / Elapsed.
func (l *Lab) Stream(ctx context.Context, spec StreamSpec) (Streamed, error) {
	ln, err := l.ListenTCP(l.HostNS, netip.AddrPortFrom(l.HostAddr(spec.Client), spec.Port))
	if err != nil {
		return Streamed{}, err
	}
	defer ln.Close()
	deadline := time.Now().Add(spec.For + 30*time.Second) // then room to drain and close
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	type result struct {
		s   Streamed
		err error
	}
	got := make(chan result, 1)
	go func() {
		s, err := receive(ln, deadline)
		got <- result{s, err}
	}()
	sendErr := l.send(ctx, spec, ln.Addr().(*net.TCPAddr).AddrPort())
	if sendErr != nil {
		ln.Close() // ends an accept that will never come
	}
	r := <-got
	if err := errors.Join(sendErr, r.err); err != nil {
		return Streamed{}, fmt.Errorf("stream %v -> port %d: %w", spec.Client, spec.Port, err)
	}
	return r.s, nil
}

// send is the client's side: write until the spec's bounds, half-close,
// and wait for the host's FIN.
func (l *Lab) send(ctx context.Context, spec StreamSpec, to netip.AddrPort) error {
	c, err := l.dialUntilDone(ctx, l.ClientNS, netip.AddrPortFrom(spec.Client, 0), to)
	if err != nil {
		return err
	}
	defer c.Close()
	if spec.Rate > 0 {
		if err := pace(c, spec.Rate); err != nil {
			return err
		}
	}
	chunk := make([]byte, streamChunk)
	stop := time.Now().Add(spec.For)
	for sent := int64(0); sent < spec.Limit && time.Now().Before(stop); {
		n, err := c.Write(chunk[:min(int64(len(chunk)), spec.Limit-sent)])
		sent += int64(n)
		if err != nil {
			return err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	return readAll(c, 0)
}

// receive is the host's side: read to the client's FIN, close, and wait
// until the client acknowledged the host's FIN, the connection's last
// frame.
func receive(ln *net.TCPListener, deadline time.Time) (Streamed, error) {
	c, err := ln.AcceptTCP()
	if err != nil {
		return Streamed{}, err
	}
	defer c.Close()
	start := time.Now()
	if err := c.SetDeadline(deadline); err != nil {
		return Streamed{}, err
	}
	// Reads as large as a sender's writes; io.Discard's 8 KiB would
	// make the receiving process, not the datapath, the cost measured.
	buf := make([]byte, streamChunk)
	var s Streamed
	for {
		n, err := c.Read(buf)
		s.Bytes += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
	}
	s.Elapsed = time.Since(start)
	if err := c.CloseWrite(); err != nil {
		return s, err
	}
	return s, awaitClosed(c, deadline)
}

// pace caps the sending rate of c, in bytes a second; TCP paces by itself
// without the fq qdisc.
func pace(c *net.TCPConn, rate uint64) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, rate)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_MAX_PACING_RATE: %w", serr)
	}
	return nil
}
