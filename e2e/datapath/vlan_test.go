package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestVLANFramesCountedWhole expects the stored bytes of VLAN-tagged
// frames to equal the frames as they crossed the wire, tags included, as
// tcpdump counts them, in every ingress mode. Before TC ingress the kernel
// moves the outer tag into the skb's metadata, where the programs must
// add it back. Tagged frames are written onto the link directly: 802.1Q,
// QinQ (802.1ad outside 802.1Q), and three tags, which no mode counts.
// Where the kernel has 802.1Q devices (Debian's do; make test-kernels runs
// it there), QUIC datagrams also go both ways over a VLAN device and a
// QinQ stack of them: at egress the tag rides in the metadata too, for the
// veth to insert.
func TestVLANFramesCountedWhole(t *testing.T) {
	kerneltest.RequireRoot(t)
	for _, xdp := range []bpfgo.XDPMode{bpfgo.XDPNative, bpfgo.XDPGeneric, bpfgo.XDPViaTC} {
		t.Run("xdp="+string(xdp), func(t *testing.T) {
			l := labtest.New(t)
			db := filepath.Join(t.TempDir(), "collector.db")
			d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0",
				"-reverse-dns", "0", "-xdp-mode", string(xdp))
			capture := labtest.Capture(t, l, traffic.DefaultPorts)

			const q, ad = 0x8100, 0x88a8
			for i, tags := range [][]uint16{{q}, {ad, q}, {ad, q, q}} {
				err := l.Forge(lab.Forged{First: 10 * i, Frames: 10, Port: 9984, Payload: 200, PerSecond: 1000, Tags: tags})
				if err != nil {
					t.Fatal(err)
				}
			}
			if has8021Q(t, l) {
				// The clients' end inserts tags in the frame itself, as
				// a switch port delivers them: with tx VLAN offload a veth
				// hands the peer the tag in metadata, as a NIC with
				// rx-vlan-offload does, which XDP cannot see (README).
				// The host's end keeps it: its egress tags stay in
				// metadata for TC.
				labtest.InNS(t, l.ClientNS, "ethtool", "-K", l.ClientIf, "txvlan", "off", "tx-vlan-stag-hw-insert", "off")
				vlanPair(t, l, "q", "type vlan id 100", "10.78.0")
				outer := vlanPair(t, l, "s", "type vlan proto 802.1ad id 200", "")
				vlanPair(t, l, "sq", "type vlan id 300", "10.79.0", outer...)
				for _, prefix := range []string{"10.78.0", "10.79.0"} {
					udpEcho(t, l, netip.MustParseAddr(prefix+".1"), netip.MustParseAddr(prefix+".2"), 20)
				}
			} else {
				t.Logf("kernel %s has no 802.1Q devices: tags in the egress metadata not tried here", kerneltest.Release())
			}
			counted, err := capture.Stop()
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Stop(); err != nil {
				t.Fatal(err)
			}
			for i := 20; i < 30; i++ {
				if _, ok := counted[lab.ForgedAddr(i)]; ok {
					t.Fatalf("the capture counted a frame with three tags")
				}
			}
			labtest.AssertSame(t, labtest.Stored(t, db), counted)
		})
	}
}

// has8021Q reports whether VLAN devices can be made here: the kernel has
// 802.1Q built in or as a module.
func has8021Q(t *testing.T, l *lab.Lab) bool {
	t.Helper()
	err := exec.Command("ip", "-n", l.HostNS, "link", "add", "link", l.HostIf, "name", "probe0", "type", "vlan", "id", "1").Run()
	if err != nil {
		return false
	}
	labtest.InHost(t, l, "ip", "link", "del", "probe0")
	return true
}

// vlanPair adds a VLAN device of the given ip-link type on each end of the
// lab's link, or on the devices on (host, client) when given, with
// addresses prefix.1/24 on the host and prefix.2/24 on the client side
// (none when prefix is empty), and returns the two device names.
func vlanPair(t *testing.T, l *lab.Lab, name, linkType, prefix string, on ...string) []string {
	t.Helper()
	parents := []string{l.HostIf, l.ClientIf}
	if len(on) == 2 {
		parents = on
	}
	var devs []string
	for i, ns := range []string{l.HostNS, l.ClientNS} {
		dev := fmt.Sprintf("%s%d", name, i)
		cmds := [][]string{
			append([]string{"link", "add", "link", parents[i], "name", dev}, strings.Fields(linkType)...),
			{"link", "set", dev, "up"},
		}
		if prefix != "" {
			cmds = append(cmds, []string{"addr", "add", fmt.Sprintf("%s.%d/24", prefix, i+1), "dev", dev})
		}
		for _, c := range cmds {
			labtest.InNS(t, ns, "ip", c...)
		}
		devs = append(devs, dev)
	}
	return devs
}

// udpEcho sends n datagrams of 300 bytes from client to host's port 9984
// and waits for each to be echoed back.
func udpEcho(t *testing.T, l *lab.Lab, host, client netip.Addr, n int) {
	t.Helper()
	var server net.PacketConn
	err := l.Do(l.HostNS, func() (err error) {
		server, err = net.ListenPacket("udp", netip.AddrPortFrom(host, 9984).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			m, from, err := server.ReadFrom(buf)
			if err != nil {
				return
			}
			server.WriteTo(buf[:m], from)
		}
	}()
	var conn *net.UDPConn
	err = l.Do(l.ClientNS, func() (err error) {
		conn, err = net.DialUDP("udp", &net.UDPAddr{IP: client.AsSlice()}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(host, 9984)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	for range n {
		if _, err := conn.Write(make([]byte, 300)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(buf); err != nil {
			t.Fatalf("echo over the VLAN from %v: %v", client, err)
		}
	}
}
