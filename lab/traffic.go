package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/back2basic/collector/traffic"
	"golang.org/x/sys/unix"
)

// Forever as Spec.Rounds repeats rounds until the context is done.
const Forever = -1

// Spec says what a Traffic run moves. The zero value is one round of
// modest traffic on the default ports.
type Spec struct {
	// Ports are the Sia services; a server runs on every port of each set.
	// The zero value means traffic.DefaultPorts.
	Ports traffic.Ports
	// OtherTCP and OtherUDP are non-Sia services that collector must not
	// count; 0 means 8080 and 5353.
	OtherTCP, OtherUDP uint16
	// Clients take part in every exchange; nil means all ClientAddrs.
	Clients []netip.Addr
	// StreamDown and StreamUp are the payload bytes of each TCP
	// connection from client to host and back; 0 means 20000 and 60000.
	// They differ so that swapped directions show.
	StreamDown, StreamUp int
	// Datagrams is the number of request/reply pairs per client and UDP
	// service, DatagramDown and DatagramUp their payload sizes; 0 means
	// 8, 300 and 1100. A datagram must fit one frame.
	Datagrams, DatagramDown, DatagramUp int
	// Rounds is how often every exchange runs; 0 means once, Forever
	// until ctx is done.
	Rounds int
	// Interval is the time from the start of one round to the next.
	Interval time.Duration
	// Timeout bounds each round; 0 means 10 s.
	Timeout time.Duration
}

// Sent is the application payload a Traffic run moved in the rounds that
// completed. Frames carry more: headers, handshakes, acknowledgements.
type Sent struct {
	Rounds int // rounds that completed
	// Sia holds payload per client, class and direction. Tally.Packets
	// counts QUIC datagrams, one frame each; it stays zero for TCP, where
	// segmentation is the kernel's choice.
	Sia map[netip.Addr]traffic.Traffic
	// Other is the payload of the non-Sia services, both directions.
	Other traffic.Tally
	// DatagramsResent counts the UDP requests sent again because no reply
	// came within resendAfter: a datagram lost on a busy link (a flood
	// filling the veth's receive ring, an emulated guest). The wire then
	// carries more than Sia and Other say; a capture counts what it saw.
	DatagramsResent uint64
}

// exchange is one client's conversation with one service: the dialer sends
// its payload and half-closes, the acceptor replies and closes. For UDP,
// each datagram gets a reply before the next is sent, so no datagram is
// lost to a full queue and the counts stay exact.
type exchange struct {
	name     string
	class    traffic.Class
	sia      bool
	udp      bool
	port     uint16
	outbound bool // the host dials the client, as its syncer does
}

func (s Spec) exchanges() []exchange {
	var exs []exchange
	for _, p := range s.Ports.Consensus {
		exs = append(exs,
			exchange{name: "consensus", class: traffic.Consensus, sia: true, port: p},
			exchange{name: "consensus outbound", class: traffic.Consensus, sia: true, port: p, outbound: true})
	}
	for _, p := range s.Ports.Siamux {
		exs = append(exs, exchange{name: "siamux", class: traffic.Siamux, sia: true, port: p})
	}
	for _, p := range s.Ports.QUIC {
		exs = append(exs, exchange{name: "quic", class: traffic.QUIC, sia: true, udp: true, port: p})
	}
	return append(exs,
		exchange{name: "other tcp", port: s.OtherTCP},
		exchange{name: "other udp", udp: true, port: s.OtherUDP})
}

// withDefaults fills in zero fields and checks the result against the lab.
func (s Spec) withDefaults(l *Lab) (Spec, error) {
	if s.Ports.Consensus == nil && s.Ports.Siamux == nil && s.Ports.QUIC == nil {
		s.Ports = traffic.DefaultPorts
	}
	if s.Clients == nil {
		s.Clients = l.ClientAddrs
	}
	s.OtherTCP, s.OtherUDP = cmp.Or(s.OtherTCP, 8080), cmp.Or(s.OtherUDP, 5353)
	s.StreamDown, s.StreamUp = cmp.Or(s.StreamDown, 20000), cmp.Or(s.StreamUp, 60000)
	s.Datagrams = cmp.Or(s.Datagrams, 8)
	s.DatagramDown, s.DatagramUp = cmp.Or(s.DatagramDown, 300), cmp.Or(s.DatagramUp, 1100)
	s.Rounds = cmp.Or(s.Rounds, 1)
	s.Timeout = cmp.Or(s.Timeout, 10*time.Second)
	// IPv6 and UDP headers; a larger datagram would be fragmented, and
	// non-first fragments carry no ports to classify.
	if maxDgram := l.MTU - 48; s.DatagramDown > maxDgram || s.DatagramUp > maxDgram {
		return s, fmt.Errorf("datagram sizes %d/%d exceed %d, one frame at MTU %d",
			s.DatagramDown, s.DatagramUp, maxDgram, l.MTU)
	}
	if s.StreamDown < 0 || s.StreamUp < 0 || s.Datagrams < 0 || s.DatagramDown < 0 ||
		s.DatagramUp < 0 || s.Rounds < Forever || s.Interval < 0 || s.Timeout < 0 {
		return s, errors.New("negative sizes, counts or durations")
	}
	return s, nil
}

// sent is what the given number of completed rounds moved: every round
// moves the same.
func (s Spec) sent(exs []exchange, rounds int) Sent {
	sent := Sent{Rounds: rounds, Sia: make(map[netip.Addr]traffic.Traffic)}
	n := uint64(rounds)
	for _, client := range s.Clients {
		var t traffic.Traffic
		for _, ex := range exs {
			down := traffic.Tally{Bytes: n * uint64(s.StreamDown)}
			up := traffic.Tally{Bytes: n * uint64(s.StreamUp)}
			if ex.udp {
				k := n * uint64(s.Datagrams)
				down = traffic.Tally{Bytes: k * uint64(s.DatagramDown), Packets: k}
				up = traffic.Tally{Bytes: k * uint64(s.DatagramUp), Packets: k}
			}
			if !ex.sia {
				sent.Other.Add(down)
				sent.Other.Add(up)
				continue
			}
			t[ex.class][traffic.Down].Add(down)
			t[ex.class][traffic.Up].Add(up)
		}
		sent.Sia[client] = t
	}
	return sent
}

// Traffic runs spec's servers and moves its traffic over real sockets: in
// each round, every client talks to every service at once, Sia and non-Sia,
// over IPv4 or IPv6 as its address has it. When it returns, every
// connection has finished its closing handshake and every server is
// stopped, so a capture stopped afterwards has seen each frame.
//
// Cancelling ctx takes effect between rounds; a round is never cut short,
// so Sent stays exact. With Rounds: Forever that is the normal end and the
// error is nil.
func (l *Lab) Traffic(ctx context.Context, spec Spec) (Sent, error) {
	spec, err := spec.withDefaults(l)
	if err != nil {
		return Sent{}, fmt.Errorf("traffic: %w", err)
	}
	exs := spec.exchanges()
	payload := make([]byte, max(spec.StreamDown, spec.StreamUp, spec.DatagramDown, spec.DatagramUp))
	srv := &servers{}
	for _, ex := range exs {
		if err = srv.start(l, spec, ex, payload); err != nil {
			err = fmt.Errorf("%s server: %w", ex.name, err)
			break
		}
	}
	rounds := 0
	var resent atomic.Uint64
	if err == nil {
		rounds, err = l.rounds(ctx, spec, exs, payload, &resent)
	}
	if err = errors.Join(err, srv.stop()); err != nil {
		err = fmt.Errorf("traffic: %w", err)
	}
	sent := spec.sent(exs, rounds)
	sent.DatagramsResent = resent.Load()
	return sent, err
}

// rounds runs rounds as spec says and returns how many completed.
func (l *Lab) rounds(ctx context.Context, spec Spec, exs []exchange, payload []byte, resent *atomic.Uint64) (int, error) {
	next := time.Now()
	for n := 0; spec.Rounds == Forever || n < spec.Rounds; n++ {
		if !sleepUntil(ctx, next) {
			if spec.Rounds == Forever {
				return n, nil
			}
			return n, fmt.Errorf("after %d of %d rounds: %w", n, spec.Rounds, ctx.Err())
		}
		next = time.Now().Add(spec.Interval)
		if err := l.round(spec, exs, payload, resent); err != nil {
			return n, fmt.Errorf("round %d: %w", n+1, err)
		}
	}
	return spec.Rounds, nil
}

// sleepUntil waits until t and reports whether ctx is still live then.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
	return ctx.Err() == nil
}

// round runs every exchange of every client concurrently.
func (l *Lab) round(spec Spec, exs []exchange, payload []byte, resent *atomic.Uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	var errs errList
	for _, client := range spec.Clients {
		for _, ex := range exs {
			wg.Go(func() { errs.add(l.dial(ctx, spec, ex, client, payload, resent)) })
		}
	}
	wg.Wait()
	return errs.join()
}

// dial runs the dialer's side of one exchange.
func (l *Lab) dial(ctx context.Context, spec Spec, ex exchange, client netip.Addr, payload []byte, resent *atomic.Uint64) error {
	host := l.HostAddr(client)
	ns, local, remote := l.ClientNS, netip.AddrPortFrom(client, 0), netip.AddrPortFrom(host, ex.port)
	send, want := spec.StreamDown, spec.StreamUp
	if ex.outbound {
		ns, local, remote = l.HostNS, netip.AddrPortFrom(host, 0), netip.AddrPortFrom(client, ex.port)
		send, want = want, send
	}
	var err error
	if ex.udp {
		err = l.pingUDP(ctx, ns, local, remote, spec.Datagrams, payload[:spec.DatagramDown], spec.DatagramUp, resent)
	} else {
		err = l.talkTCP(ctx, ns, local, remote, payload[:send], want)
	}
	if err != nil {
		return fmt.Errorf("%s %s -> %s: %w", ex.name, local.Addr(), remote, err)
	}
	return nil
}

// talkTCP is the dialer's side: connect, send, half-close, take the whole
// reply.
func (l *Lab) talkTCP(ctx context.Context, ns string, local, remote netip.AddrPort, send []byte, want int) error {
	c, err := l.dialUntilDone(ctx, ns, local, remote)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := sendAll(c, send); err != nil {
		return err
	}
	return readAll(c, want)
}

// dialUntilDone is DialTCP for a connection that lives no longer than
// ctx: its reads and writes fail at ctx's deadline.
func (l *Lab) dialUntilDone(ctx context.Context, ns string, local, remote netip.AddrPort) (*net.TCPConn, error) {
	c, err := l.DialTCP(ctx, ns, local, remote)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// answerTCP is the acceptor's side: take the whole request, reply,
// half-close, and wait for the dialer to acknowledge the FIN. That ACK is
// the connection's last frame; once it arrived, nothing of the connection
// is still on its way.
func answerTCP(c *net.TCPConn, deadline time.Time, want int, reply []byte) error {
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	if err := readAll(c, want); err != nil {
		return err
	}
	if err := sendAll(c, reply); err != nil {
		return err
	}
	return awaitClosed(c, deadline)
}

// sendAll writes data and half-closes, which tells the peer it has it all.
func sendAll(c *net.TCPConn, data []byte) error {
	if _, err := c.Write(data); err != nil {
		return err
	}
	return c.CloseWrite()
}

func readAll(c *net.TCPConn, want int) error {
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	if n != int64(want) {
		return fmt.Errorf("got %d bytes, want %d", n, want)
	}
	return nil
}

// awaitClosed polls the socket state until LAST_ACK has turned into CLOSE.
func awaitClosed(c *net.TCPConn, deadline time.Time) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	for {
		var info *unix.TCPInfo
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); err != nil {
			return err
		}
		if gerr != nil {
			return fmt.Errorf("TCP_INFO: %w", gerr)
		}
		if info.State == unix.BPF_TCP_CLOSE { // same value as the kernel's TCP_CLOSE
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("FIN not acknowledged (tcp state %d): %w", info.State, os.ErrDeadlineExceeded)
		}
		time.Sleep(time.Millisecond)
	}
}

// resendAfter is how long pingUDP waits for a reply before it sends its
// request again, as a QUIC endpoint would after a loss.
const resendAfter = time.Second

// pingUDP sends n datagrams, each waiting for its reply of want bytes, and
// sends a request again when its reply does not come within resendAfter,
// adding one to resent each time. A late reply to a request sent twice is
// taken as the next one's: the count of replies still matches.
func (l *Lab) pingUDP(ctx context.Context, ns string, local, remote netip.AddrPort, n int, send []byte, want int, resent *atomic.Uint64) error {
	c, err := l.DialUDP(ns, local, remote)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	buf := make([]byte, want+1)
	for range n {
		if _, err := c.Write(send); err != nil {
			return err
		}
		for {
			wait := time.Now().Add(resendAfter)
			if wait.After(deadline) {
				wait = deadline
			}
			if err := c.SetReadDeadline(wait); err != nil {
				return err
			}
			got, err := c.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
				resent.Add(1)
				if _, err := c.Write(send); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("got a %d-byte reply, want %d", got, want)
			}
			break
		}
	}
	return nil
}

// servers runs the acceptor side of every exchange until stop.
type servers struct {
	wg    sync.WaitGroup
	errs  errList
	socks []io.Closer
}

// errList collects the errors of concurrent goroutines.
type errList struct {
	mu   sync.Mutex
	errs []error
}

func (e *errList) add(err error) {
	if err != nil {
		e.mu.Lock()
		e.errs = append(e.errs, err)
		e.mu.Unlock()
	}
}

func (e *errList) join() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(e.errs...)
}

// start listens for ex on the unspecified IPv6 address, which takes both
// families, in the namespace of the side that accepts.
func (s *servers) start(l *Lab, spec Spec, ex exchange, payload []byte) error {
	ns, want, reply := l.HostNS, spec.StreamDown, spec.StreamUp
	if ex.outbound {
		ns, want, reply = l.ClientNS, reply, want
	}
	addr := netip.AddrPortFrom(netip.IPv6Unspecified(), ex.port)
	if ex.udp {
		c, err := l.ListenUDP(ns, addr)
		if err != nil {
			return err
		}
		s.socks = append(s.socks, c)
		s.wg.Go(func() { s.answerUDP(c, ex, spec.DatagramDown, payload[:spec.DatagramUp]) })
		return nil
	}
	ln, err := l.ListenTCP(ns, addr)
	if err != nil {
		return err
	}
	s.socks = append(s.socks, ln)
	s.wg.Go(func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.errs.add(fmt.Errorf("%s server: %w", ex.name, err))
				}
				return
			}
			s.wg.Go(func() {
				if err := answerTCP(c, time.Now().Add(spec.Timeout), want, payload[:reply]); err != nil {
					s.errs.add(fmt.Errorf("%s server, client %s: %w", ex.name, c.RemoteAddr(), err))
				}
			})
		}
	})
	return nil
}

// answerUDP answers each datagram of want bytes with reply.
func (s *servers) answerUDP(c *net.UDPConn, ex exchange, want int, reply []byte) {
	buf := make([]byte, want+1)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.errs.add(fmt.Errorf("%s server: %w", ex.name, err))
			}
			return
		}
		if n != want {
			s.errs.add(fmt.Errorf("%s server: got a %d-byte datagram from %s, want %d", ex.name, n, from, want))
		}
		if _, err := c.WriteToUDPAddrPort(reply, from); err != nil {
			s.errs.add(fmt.Errorf("%s server: reply to %s: %w", ex.name, from, err))
		}
	}
}

// stop closes the sockets and waits for every handler to finish.
func (s *servers) stop() error {
	for _, c := range s.socks {
		c.Close()
	}
	s.wg.Wait()
	return s.errs.join()
}
