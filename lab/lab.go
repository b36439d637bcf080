// Package lab builds a throwaway network for the demo and the end-to-end
// tests: two network namespaces joined by one veth pair, real sockets that
// move Sia-shaped traffic between them, an AF_PACKET frame counter that
// checks collector's numbers independently of its eBPF datapath, and the
// daemon itself run in the host namespace.
//
//	  host ns (colNNNNh)                       client ns (colNNNNc)
//	+--------------------+                   +-----------------------+
//	| colhNNNN           |       veth        | colcNNNN              |
//	|   10.77.0.1/24     |<----------------->|   10.77.0.2-4/24      |
//	|   fd77::1/64       |                   |   fd77::2/64, ::3/64  |
//	| servers 9981 9984  |                   | server 9981 (the host |
//	|   8080 5353        |                   |   syncer dials it)    |
//	+--------------------+                   +-----------------------+
//
// Those are the default five clients; Options.Clients gives a lab more
// addresses in the same nets.
//
// collector attaches to HostIf, the host side of the veth, so "up" is a
// frame leaving the host namespace and "down" one arriving there.
//
// Nothing is created in the root namespace: the veth is born inside the host
// namespace with its peer placed straight in the client namespace. The one
// exception is Options.HostInCurrentNS, for a throwaway machine. Offloads
// are off on both ends so every skb is one wire frame (NICOffloads gives
// the host's end a NIC's back, for measuring throughput). A Lab must be
// closed; deleting its namespaces removes the veth with them. Sockets opened in a
// namespace keep it alive in the kernel (though no longer listed) until they
// are closed.
//
// Building a lab needs root; the frame parser does not.
package lab

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/safchain/ethtool"
	"golang.org/x/sys/unix"
)

// Options tune a Lab. The zero value is a working lab.
type Options struct {
	// MTU of both veth ends; 0 means 1500.
	MTU int
	// HostInCurrentNS puts the host side (the veth end, its addresses and
	// the lab's host servers) in the caller's own network namespace instead
	// of a new one: where a daemon that systemd runs sees it. Only for a
	// throwaway machine such as a test VM, never the machine a test runs
	// on. HostNS then names that namespace (ip netns attach), so Do, ip -n
	// and ip netns exec work as with the default; Close removes the name
	// and the veth, not the namespace.
	HostInCurrentNS bool
	// Clients is the number of client addresses, each a client as
	// collector sees it; 0 means 5. Half of them, rounded up, are IPv4
	// (10.77.0.2 and on), the rest IPv6 (fd77::2 and on); at most
	// MaxClients.
	Clients int
}

// MaxClients is the most client addresses a lab has: the IPv4 ones fill
// 10.77.0.2 to 10.77.0.254.
const MaxClients = 2 * 253

// Lab is a host namespace and a client namespace joined by a veth pair.
// Its fields describe the lab and must not be changed.
type Lab struct {
	HostNS, ClientNS string // names under /var/run/netns
	HostIf, ClientIf string // the veth ends, in HostNS and ClientNS
	// HostAddrs are the host's addresses: IPv4 first, then IPv6.
	HostAddrs []netip.Addr
	// ClientAddrs are the client addresses, IPv4 first; each is one client
	// as collector sees it.
	ClientAddrs []netip.Addr
	// MTU is the veth MTU.
	MTU int

	closeOnce sync.Once
	closeErr  error
	made      []string // namespaces created so far, for Close
}

// The lab's addressing: private ranges that never leave the namespaces.
// The host has the first address of each net, the clients those after.
var hostNets = []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("fd77::1/64")}

// defaultClients is the number of client addresses by default: three IPv4
// (10.77.0.2-4) and two IPv6 (fd77::2-3).
const defaultClients = 5

// clientNets are the n client addresses with their nets: IPv4 first,
// ceil(n/2) of them, each after the one before, then IPv6 the same way.
func clientNets(n int) []netip.Prefix {
	ps := make([]netip.Prefix, 0, n)
	for i, host := range hostNets {
		count := (n + 1) / 2
		if i == 1 {
			count = n / 2
		}
		addr := host.Addr()
		for range count {
			addr = addr.Next()
			ps = append(ps, netip.PrefixFrom(addr, host.Bits()))
		}
	}
	return ps
}

func addrsOf(ps []netip.Prefix) []netip.Addr {
	addrs := make([]netip.Addr, len(ps))
	for i, p := range ps {
		addrs[i] = p.Addr()
	}
	return addrs
}

// New builds a lab under a random prefix, so parallel test binaries do not
// collide. On error nothing of it is left behind.
func New(opts Options) (*Lab, error) {
	var r [2]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("lab: random prefix: %w", err)
	}
	id := hex.EncodeToString(r[:])
	l := &Lab{
		HostNS:   "col" + id + "h",
		ClientNS: "col" + id + "c",
		HostIf:   "colh" + id,
		ClientIf: "colc" + id,
		MTU:      opts.MTU,
	}
	if l.MTU == 0 {
		l.MTU = 1500
	}
	if l.MTU < 1280 {
		return nil, fmt.Errorf("lab: MTU %d is below IPv6's minimum of 1280", l.MTU)
	}
	clients := cmp.Or(opts.Clients, defaultClients)
	if clients < 1 || clients > MaxClients {
		return nil, fmt.Errorf("lab: %d clients; accepted: 1 to %d", opts.Clients, MaxClients)
	}
	nets := clientNets(clients)
	l.HostAddrs = addrsOf(hostNets)
	l.ClientAddrs = addrsOf(nets)
	if err := l.build(opts.HostInCurrentNS, nets); err != nil {
		return nil, fmt.Errorf("lab: %w", errors.Join(err, l.Close()))
	}
	return l, nil
}

// build makes the namespaces and the veth, and gives the clients' end
// the addresses clients.
func (l *Lab) build(hostHere bool, clients []netip.Prefix) error {
	for _, ns := range []string{l.HostNS, l.ClientNS} {
		var err error
		if ns == l.HostNS && hostHere {
			err = attachCurrent(ns)
		} else {
			err = run("", "ip", "netns", "add", ns)
		}
		if err != nil {
			return err
		}
		l.made = append(l.made, ns)
	}
	if err := run("", "ip", "-n", l.HostNS, "link", "add", l.HostIf, "type", "veth",
		"peer", "name", l.ClientIf, "netns", l.ClientNS); err != nil {
		return err
	}
	if err := l.configure(l.HostNS, l.HostIf, hostNets); err != nil {
		return err
	}
	return l.configure(l.ClientNS, l.ClientIf, clients)
}

// attachCurrent names the calling thread's network namespace ns under
// /var/run/netns. ip netns attach takes a process; /proc also resolves a
// thread ID, and this thread is locked so the name cannot point at a
// namespace another goroutine switched a thread into.
func attachCurrent(ns string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return run("", "ip", "netns", "attach", ns, strconv.Itoa(unix.Gettid()))
}

// configure addresses and raises one veth end and lo in ns.
func (l *Lab) configure(ns, dev string, nets []netip.Prefix) error {
	// One ip -batch per namespace keeps setup to a handful of processes.
	var b strings.Builder
	fmt.Fprintf(&b, "link set dev lo up\nlink set dev %s mtu %d up\n", dev, l.MTU)
	for _, p := range nets {
		fmt.Fprintf(&b, "addr add %s dev %s", p, dev)
		if p.Addr().Is6() {
			// A tentative IPv6 address cannot be bound for about a
			// second, and the lab has no duplicates to detect.
			b.WriteString(" nodad")
		}
		b.WriteString("\n")
	}
	if err := run(b.String(), "ip", "-n", ns, "-batch", "-"); err != nil {
		return err
	}
	return doIn(ns, func() error { return wireFrames(dev) })
}

// wireFrames turns off on dev, in the calling thread's namespace, the
// offloads of ethtool -K's tso, gso, gro, tx and rx, through the ethtool
// ioctl, so the lab (and with it the demo) needs no ethtool program. With
// segmentation offloads a TCP skb can stand for many wire frames, and GRO
// would merge arriving frames; AF_PACKET would then see super-packets,
// not what a NIC puts on the wire. Checksums off makes the sender fill
// them in as a NIC would (and keeps TSO, which depends on them, off) and
// the receiver check them.
func wireFrames(dev string) error {
	return setOffloads(dev, false, isOffload)
}

// isOffload says whether the ethtool feature name is one wireFrames turns
// off. Kernels add TCP segmentation features (6.18:
// tx-tcp-accecn-segmentation), so those are matched by name from the
// kernel's own list.
func isOffload(name string) bool {
	tso := strings.HasPrefix(name, "tx-tcp") && strings.HasSuffix(name, "-segmentation")
	other := name == "tx-generic-segmentation" || name == "rx-gro" || name == "rx-checksum"
	return tso || isTxChecksum(name) || other
}

func isTxChecksum(name string) bool { return strings.HasPrefix(name, "tx-checksum-") }

// setOffloads turns on or off every feature of dev whose name match
// accepts, in the calling thread's namespace.
func setOffloads(dev string, on bool, match func(name string) bool) error {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	names, err := e.FeatureNames(dev)
	if err != nil {
		return fmt.Errorf("offload names of %s: %w", dev, err)
	}
	change := map[string]bool{}
	for name := range names {
		if match(name) {
			change[name] = on
		}
	}
	if err := e.Change(dev, change); err != nil {
		return fmt.Errorf("set offloads of %s: %w", dev, err)
	}
	return nil
}

// NICOffloads gives the link the offloads of a host's real NIC, for a
// throughput measurement rather than a frame-exact count: the host's end
// receives with GRO and checksum offload (and sends with TSO), and the
// clients' end still sends one skb per wire frame, as frames arrive from
// a wire, with their checksums offloaded, as a NIC validates them on
// receipt. GRO on the host's end then merges them as it would a NIC's.
func (l *Lab) NICOffloads() error {
	if err := l.Do(l.HostNS, func() error { return setOffloads(l.HostIf, true, isOffload) }); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := l.Do(l.ClientNS, func() error { return setOffloads(l.ClientIf, true, isTxChecksum) }); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Close deletes both namespaces, which removes the veth pair (with
// HostInCurrentNS it removes only the host namespace's name). It is
// idempotent and safe to call from any goroutine, including a signal
// handler's, while traffic or a capture is still running. A Traffic round
// that then finds the lab gone fails; cancel Traffic first for a quiet end.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for _, ns := range l.made {
			errs = append(errs, run("", "ip", "netns", "delete", ns))
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// HostAddr returns the host address of the same family as client.
func (l *Lab) HostAddr(client netip.Addr) netip.Addr {
	if client.Is4() {
		return l.HostAddrs[0]
	}
	return l.HostAddrs[1]
}

// Do runs fn on an OS thread switched into network namespace ns (one of
// HostNS, ClientNS). Sockets fn creates belong to ns for their whole life
// and may be used from any goroutine afterwards. The caller's thread is
// never switched.
func (l *Lab) Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- doIn(ns, fn) }()
	return <-errc
}

// doIn must run on its own goroutine: if the thread cannot be switched back
// it stays locked, and Go ends the thread with the goroutine instead of
// handing a thread in the wrong namespace to other goroutines.
func doIn(ns string, fn func() error) error {
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		return err // the path names the namespace
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// run executes a command, feeding it stdin when not empty, and names the
// command and its stderr when it fails.
func run(stdin, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return nil
}

// ListenTCP listens on addr in namespace ns. The unspecified IPv6 address
// listens on both families.
func (l *Lab) ListenTCP(ns string, addr netip.AddrPort) (*net.TCPListener, error) {
	return openIn(l, ns, func() (*net.TCPListener, error) {
		return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
	})
}

// ListenUDP binds a UDP socket to addr in namespace ns. The unspecified IPv6
// address receives both families.
func (l *Lab) ListenUDP(ns string, addr netip.AddrPort) (*net.UDPConn, error) {
	return openIn(l, ns, func() (*net.UDPConn, error) {
		return net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	})
}

// DialTCP connects from local (port 0 picks an ephemeral one) in namespace
// ns to remote, giving up when ctx is done.
func (l *Lab) DialTCP(ctx context.Context, ns string, local, remote netip.AddrPort) (*net.TCPConn, error) {
	return openIn(l, ns, func() (*net.TCPConn, error) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local)}
		c, err := d.DialContext(ctx, "tcp", remote.String())
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	})
}

// DialUDP opens a UDP socket in namespace ns bound to local (port 0 picks an
// ephemeral one) and connected to remote.
func (l *Lab) DialUDP(ns string, local, remote netip.AddrPort) (*net.UDPConn, error) {
	return openIn(l, ns, func() (*net.UDPConn, error) {
		return net.DialUDP("udp", net.UDPAddrFromAddrPort(local), net.UDPAddrFromAddrPort(remote))
	})
}

// openIn creates a socket with open inside namespace ns.
func openIn[T any](l *Lab, ns string, open func() (T, error)) (T, error) {
	var sock T
	err := l.Do(ns, func() error {
		var err error
		if sock, err = open(); err != nil {
			return fmt.Errorf("netns %s: %w", ns, err)
		}
		return nil
	})
	return sock, err
}

// HTTPTransport makes HTTP requests from namespace ns, to servers reached
// only from there, such as the daemon's on the host namespace's loopback.
// URLs must name an IP address, not a host name.
func (l *Lab) HTTPTransport(ns string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			to, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial in %s: %w", ns, err)
			}
			return l.DialTCP(ctx, ns, netip.AddrPort{}, to)
		},
	}
}
