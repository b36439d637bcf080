package lab_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
	"github.com/prometheus/procfs"
)

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestUpAndDown(t *testing.T) {
	kerneltest.RequireRoot(t)
	start := time.Now()
	l := labtest.New(t)
	up := time.Since(start)

	netns := output(t, "ip", "netns", "list")
	for _, ns := range []string{l.HostNS, l.ClientNS} {
		if !strings.Contains(netns, ns) {
			t.Errorf("ip netns list lacks %s:\n%s", ns, netns)
		}
	}
	if out := output(t, "ip", "-n", l.HostNS, "-br", "addr", "show", l.HostIf); !strings.Contains(out, "UP") ||
		!strings.Contains(out, "10.77.0.1/24") || !strings.Contains(out, "fd77::1/64") {
		t.Errorf("host side: %s", out)
	}
	if out := output(t, "ip", "netns", "exec", l.ClientNS, "ethtool", "-k", l.ClientIf); !strings.Contains(out, "tcp-segmentation-offload: off") ||
		!strings.Contains(out, "generic-segmentation-offload: off") || !strings.Contains(out, "generic-receive-offload: off") ||
		!strings.Contains(out, "tx-checksumming: off") || !strings.Contains(out, "rx-checksumming: off") {
		t.Errorf("client side offloads still on:\n%s", out)
	}

	start = time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("setup %v, teardown %v", up.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	netns = output(t, "ip", "netns", "list")
	links := output(t, "ip", "-br", "link")
	for _, name := range []string{l.HostNS, l.ClientNS, l.HostIf, l.ClientIf} {
		if strings.Contains(netns, name) || strings.Contains(links, name) {
			t.Errorf("%s left behind:\n%s\n%s", name, netns, links)
		}
	}
	if err := l.Do(l.HostNS, func() error { return nil }); err == nil {
		t.Error("Do in a deleted namespace succeeded")
	}
}

// TestDo checks that fn runs in the namespace and the caller stays out.
func TestDo(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	var want, got, caller unix.Stat_t
	if err := unix.Stat(filepath.Join("/var/run/netns", l.ClientNS), &want); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(l.ClientNS, func() error { return unix.Stat("/proc/thread-self/ns/net", &got) }); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino {
		t.Errorf("fn ran in netns inode %d, want %d", got.Ino, want.Ino)
	}
	if err := unix.Stat("/proc/self/ns/net", &caller); err != nil {
		t.Fatal(err)
	}
	if caller.Ino == want.Ino {
		t.Error("the process's main thread moved into the client namespace")
	}
	sentinel := errors.New("sentinel")
	if err := l.Do(l.HostNS, func() error { return sentinel }); err != sentinel {
		t.Errorf("Do returned %v, want fn's error unchanged", err)
	}
}

// TestReachability dials the host from every client address, IPv4 and
// IPv6, and checks the host sees that address as the source.
func TestReachability(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	ln, err := l.ListenTCP(l.HostNS, netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := ln.SetDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	for _, client := range l.ClientAddrs {
		c, err := l.DialTCP(ctx, l.ClientNS, netip.AddrPortFrom(client, 0), netip.AddrPortFrom(l.HostAddr(client), port))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		if from := s.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(); from != client {
			t.Errorf("host sees %v, want %v", from, client)
		}
		s.Close()
		c.Close()
	}
}

// TestCaptureTraffic runs traffic under a capture, on the default ports
// and on others, and checks the capture against what was sent.
func TestCaptureTraffic(t *testing.T) {
	kerneltest.RequireRoot(t)
	for name, ports := range map[string]traffic.Ports{
		"default ports": traffic.DefaultPorts,
		"other ports":   {Consensus: []uint16{19981, 29981}, Siamux: []uint16{19984}, QUIC: []uint16{19984, 19985}},
	} {
		t.Run(name, func(t *testing.T) {
			l := labtest.New(t)
			c, err := l.Capture(ports)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Stop() })
			spec := lab.Spec{Ports: ports, Rounds: 2}
			start := time.Now()
			resent := retransmits(t, l)
			sent, err := l.Traffic(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			got, err := c.Stop()
			if err != nil {
				t.Fatal(err)
			}
			resent = retransmits(t, l) - resent
			if sent.Rounds != 2 {
				t.Errorf("%d rounds, want 2", sent.Rounds)
			}
			var frames, payload traffic.Tally
			for client, tr := range got {
				for class := range traffic.NumClasses {
					for dir := range traffic.NumDirections {
						frames.Add(tr[class][dir])
						payload.Add(sent.Sia[client][class][dir])
					}
				}
			}
			t.Logf("%v: %d Sia frames, %d bytes for %d payload bytes; %d frames ignored; %d TCP segments sent again",
				took.Round(time.Millisecond), frames.Packets, frames.Bytes, payload.Bytes, c.Ignored().Packets, resent)
			checkCapture(t, l, sent, got, c.Ignored(), resent)
		})
	}
}

// TestTrafficUntilDone runs rounds until the context ends, as the demo
// does, and checks the rounds that finished are counted exactly.
func TestTrafficUntilDone(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	c, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// One IPv4 and one IPv6 client: the others must not show up.
	clients := []netip.Addr{l.ClientAddrs[0], l.ClientAddrs[len(l.ClientAddrs)-1]}
	resent := retransmits(t, l)
	sent, err := l.Traffic(ctx, lab.Spec{Clients: clients, Rounds: lab.Forever, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	resent = retransmits(t, l) - resent
	if sent.Rounds < 2 || sent.Rounds > 10 {
		t.Errorf("%d rounds in 1s at 100ms intervals", sent.Rounds)
	}
	checkCapture(t, l, sent, got, c.Ignored(), resent)

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	sent, err = l.Traffic(done, lab.Spec{Rounds: 3})
	if !errors.Is(err, context.Canceled) || sent.Rounds != 0 {
		t.Errorf("cancelled counted run: %d rounds, %v", sent.Rounds, err)
	}
}

// checkCapture compares what a capture counted with what traffic sent.
// resent is the number of TCP segments both namespaces sent again while
// the capture ran: the kernel says how many, not for which flow, so each
// flow may carry all of them.
func checkCapture(t *testing.T, l *lab.Lab, sent lab.Sent, got map[netip.Addr]traffic.Traffic, ignored traffic.Tally, resent uint64) {
	t.Helper()
	if sent.DatagramsResent != 0 {
		t.Errorf("%d UDP requests were sent again in a calm lab: a datagram was lost", sent.DatagramsResent)
	}
	if len(got) != len(sent.Sia) {
		t.Errorf("capture has %d clients, traffic %d: %v", len(got), len(sent.Sia), got)
	}
	for client, want := range sent.Sia {
		ipHdr := uint64(20)
		if client.Is6() {
			ipHdr = 40
		}
		for class := range traffic.NumClasses {
			for dir := range traffic.NumDirections {
				frames, payload := got[client][class][dir], want[class][dir]
				where := client.String() + " " + class.String() + " " + dir.String()
				if frames.Packets == 0 || frames.Bytes < payload.Bytes {
					t.Errorf("%s: frames %+v, payload %+v", where, frames, payload)
				}
				if class == traffic.QUIC {
					// One frame per datagram: the sizes are exact.
					exact := payload.Bytes + payload.Packets*(14+ipHdr+8)
					if frames.Packets != payload.Packets || frames.Bytes != exact {
						t.Errorf("%s: frames %+v, want %d packets of %d bytes in all", where, frames, payload.Packets, exact)
					}
					continue
				}
				// Each TCP frame adds at most Ethernet, IP and a full
				// TCP header, and a segment sent again (a tail loss
				// probe or timeout on a slow emulated guest) at most
				// one full frame. Leaked non-Sia payload, as much as
				// the Sia payload, breaks this bound.
				limit := payload.Bytes + frames.Packets*(14+ipHdr+60) + resent*uint64(14+l.MTU)
				if frames.Bytes > limit {
					t.Errorf("%s: %d frame bytes exceed payload %d plus headers and %d segments sent again (%d)",
						where, frames.Bytes, payload.Bytes, resent, limit)
				}
			}
		}
	}
	if ignored.Bytes < sent.Other.Bytes {
		t.Errorf("capture ignored %+v, less than the %+v of non-Sia payload", ignored, sent.Other)
	}
}

// retransmits is the number of TCP segments the lab's two namespaces have
// sent again so far (RetransSegs in their /proc/net/snmp, read through the
// thread that Do switched). It reports with t.Error, as it may run off the
// test's goroutine.
func retransmits(t *testing.T, l *lab.Lab) uint64 {
	t.Helper()
	var sum uint64
	for _, ns := range []string{l.HostNS, l.ClientNS} {
		err := l.Do(ns, func() error {
			thread, err := procfs.NewProc(unix.Gettid())
			if err != nil {
				return err
			}
			snmp, err := thread.Snmp()
			if err != nil {
				return err
			}
			if snmp.RetransSegs == nil {
				return errors.New("no Tcp RetransSegs in net/snmp")
			}
			sum += uint64(*snmp.RetransSegs)
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", ns, err)
		}
	}
	return sum
}

// TestManyClients builds a lab with more clients than the default, checks
// their addresses, and runs traffic from all of them under a capture.
func TestManyClients(t *testing.T) {
	kerneltest.RequireRoot(t)
	const n = 23
	l := labtest.NewWith(t, lab.Options{Clients: n})
	if len(l.ClientAddrs) != n {
		t.Fatalf("%d client addresses, want %d: %v", len(l.ClientAddrs), n, l.ClientAddrs)
	}
	seen := map[netip.Addr]bool{}
	for i, addr := range l.ClientAddrs {
		if want4 := i < (n+1)/2; addr.Is4() != want4 || seen[addr] || slices.Contains(l.HostAddrs, addr) {
			t.Errorf("client %d: %v (IPv4 first, %d of them, each once, none the host's)", i, addr, (n+1)/2)
		}
		seen[addr] = true
	}
	c, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	resent := retransmits(t, l)
	sent, err := l.Traffic(context.Background(), lab.Spec{StreamDown: 2000, StreamUp: 6000})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	checkCapture(t, l, sent, got, c.Ignored(), retransmits(t, l)-resent)

	if _, err := lab.New(lab.Options{Clients: lab.MaxClients + 1}); err == nil || !strings.Contains(err.Error(), "clients") {
		t.Errorf("a lab of %d clients: %v, want an error naming the clients", lab.MaxClients+1, err)
	}
}
