package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Streamed is what one bulk stream moved.
type Streamed struct {
	Bytes   int64         // payload the host read
	Elapsed time.Duration // from the host's accept to the last byte read
}

// streamChunk is how much the client hands the kernel per write.
const streamChunk = 1 << 20

// Stream sends one bulk TCP stream from client to the host's port, as a
// renter uploading to a host does, until limit bytes are sent or for at
// most d, and returns once the connection is fully closed: every frame of
// it has crossed the link. Throughput is Bytes / Elapsed.
func (l *Lab) Stream(ctx context.Context, client netip.Addr, port uint16, limit int64, d time.Duration) (Streamed, error) {
	ln, err := l.ListenTCP(l.HostNS, netip.AddrPortFrom(l.HostAddr(client), port))
	if err != nil {
		return Streamed{}, err
	}
	defer ln.Close()
	deadline := time.Now().Add(d + 30*time.Second) // d, then room to drain and close
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
	sendErr := l.send(ctx, client, ln.Addr().(*net.TCPAddr).AddrPort(), limit, d)
	if sendErr != nil {
		ln.Close() // ends an accept that will never come
	}
	r := <-got
	if err := errors.Join(sendErr, r.err); err != nil {
		return Streamed{}, fmt.Errorf("stream %v -> port %d: %w", client, port, err)
	}
	return r.s, nil
}

// send is the client's side: write until limit or d, half-close, and wait
// for the host's FIN.
func (l *Lab) send(ctx context.Context, client netip.Addr, to netip.AddrPort, limit int64, d time.Duration) error {
	c, err := l.DialTCP(ctx, l.ClientNS, netip.AddrPortFrom(client, 0), to)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	chunk := make([]byte, streamChunk)
	stop := time.Now().Add(d)
	for sent := int64(0); sent < limit && time.Now().Before(stop); {
		n, err := c.Write(chunk[:min(int64(len(chunk)), limit-sent)])
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
