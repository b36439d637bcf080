package datapath

import (
	"context"
	"fmt"
	"net/netip"
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

// TestEndToEnd runs the real daemon on a veth lab with real sockets and
// compares what it stored with an independent count of the same frames
// taken with AF_PACKET on the same link. Offloads are off in the lab, so
// every skb is one wire frame and both sides see the same frames.
func TestEndToEnd(t *testing.T) {
	kerneltest.RequireRoot(t)
	for _, xdp := range []bpfgo.XDPMode{bpfgo.XDPNative, bpfgo.XDPGeneric, bpfgo.XDPViaTC} {
		for _, tc := range []bpfgo.TCMode{bpfgo.TCX, bpfgo.TCLegacy} {
			t.Run(fmt.Sprintf("xdp=%s,tc=%s", xdp, tc), func(t *testing.T) {
				if tc == bpfgo.TCX {
					kerneltest.RequireTCX(t)
				}
				stored, counted, out := runLab(t, "-xdp-mode", string(xdp), "-tc-mode", string(tc))
				labtest.AssertSame(t, stored, counted)
				if want := fmt.Sprintf("xdp=%s tc=%s", xdp, tc); !strings.Contains(out, want) {
					t.Errorf("the daemon did not report %q:\n%s", want, out)
				}
			})
		}
	}
}

// TestEndToEndAuto runs the lab with the modes a default install uses:
// native XDP (veth has it), and TCX where the kernel has it (6.6+), else
// the legacy clsact filter.
func TestEndToEndAuto(t *testing.T) {
	kerneltest.RequireRoot(t)
	stored, counted, out := runLab(t, "-xdp-mode", "auto", "-tc-mode", "auto")
	labtest.AssertSame(t, stored, counted)
	want := "xdp=native tc=legacy"
	if kerneltest.HaveTCX() {
		want = "xdp=native tc=tcx"
	}
	if !strings.Contains(out, want) {
		t.Errorf("on kernel %s auto mode must pick %q:\n%s", kerneltest.Release(), want, out)
	}
}

// TestAutoWithoutNativeXDP runs auto mode on the lab's veth, which has
// native XDP, and on the host namespace's loopback, which has none (no
// driver XDP; every kernel has one): native stays on the veth, and the
// loopback counts with TC ingress rather than generic XDP, which would
// turn GRO off (BenchmarkHostReceive measures what that costs). The
// journal says which mode and why.
func TestAutoWithoutNativeXDP(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", filepath.Join(t.TempDir(), "collector.db"),
		"-interface", l.HostIf+",lo", "-live-interval", "0", "-reverse-dns", "0", "-xdp-mode", "auto")
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	out := d.Output()
	for _, want := range []string{
		"interface=" + l.HostIf + " xdp=native",
		"interface=lo xdp=tc",
		`msg="native xdp unavailable, counting ingress with tc: generic xdp would turn GRO off on the interface, which costs the host more" component=bpf interface=lo reason="no native xdp: attach xdp native on lo: `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the daemon did not log %q:\n%s", want, out)
		}
	}
}

// TestAutoReplacesPinnedGeneric starts a pinned daemon with generic XDP
// on the loopback, as auto chose before, and then one in auto mode: the
// pinned generic link makes way for TC ingress, and GRO is back.
func TestAutoReplacesPinnedGeneric(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
	args := []string{"-sqlite-path", filepath.Join(t.TempDir(), "collector.db"), "-interface", "lo", "-live-interval", "0",
		"-reverse-dns", "0", "-pinned-maps", "1", "-pin-path", pins}
	for _, step := range []struct{ mode, logged, onLink string }{
		{"generic", "interface=lo xdp=generic", "xdpgeneric"},
		{"auto", "interface=lo xdp=tc", ""},
	} {
		d := labtest.StartDaemon(t, l, selfexec.Collector(), append(args, "-xdp-mode", step.mode)...)
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(d.Output(), step.logged) {
			t.Fatalf("XDP_MODE=%s: the daemon did not log %q:\n%s", step.mode, step.logged, d.Output())
		}
		// The pinned links stay attached after the daemon stopped.
		link := labtest.InHost(t, l, "ip", "link", "show", "dev", "lo")
		if step.onLink == "" && strings.Contains(link, "xdp") || step.onLink != "" && !strings.Contains(link, step.onLink) {
			t.Fatalf("XDP_MODE=%s: want %q on the loopback:\n%s", step.mode, step.onLink, link)
		}
	}
}

// runLab starts the daemon in a fresh lab, drives three rounds of traffic
// from every lab client, stops the daemon with SIGTERM, and returns what
// the database holds per ip, what the capture counted per client, and the
// daemon's output.
func runLab(t *testing.T, args ...string) (stored map[string]traffic.Traffic, counted map[netip.Addr]traffic.Traffic, output string) {
	t.Helper()
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "collector.db")
	// The longest flush interval, a minute, most often leaves the final
	// flush at SIGTERM to store everything: it must write the last
	// partial minute.
	args = append([]string{"-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0", "-reverse-dns", "0"}, args...)
	start := time.Now()
	d := labtest.StartDaemon(t, l, selfexec.Collector(), args...)

	counted = labtest.CapturedRounds(t, l, 3)

	if crossesMinute(start, time.Now()) {
		t.Log("a minute boundary passed: a periodic flush may have run, not checking the database is empty before SIGTERM")
	} else if rows := labtest.Stored(t, db); len(rows) != 0 {
		t.Fatalf("rows stored before SIGTERM within one flush interval: %v", rows)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	assertMinutes(t, db, start, time.Now())
	return labtest.Stored(t, db), counted, d.Output()
}

// assertMinutes checks every row is stamped with a minute of the run.
func assertMinutes(t *testing.T, path string, from, to time.Time) {
	t.Helper()
	var lo, hi int64
	if err := labtest.OpenDB(t, path).QueryRow("SELECT MIN(timestamp), MAX(timestamp) FROM traffic").Scan(&lo, &hi); err != nil {
		t.Fatal(err)
	}
	first, last := from.Truncate(time.Minute).Unix(), to.Truncate(time.Minute).Unix()
	if lo < first || hi > last || lo%60 != 0 || hi%60 != 0 {
		t.Fatalf("row timestamps %d..%d, want whole minutes within %d..%d", lo, hi, first, last)
	}
}

func crossesMinute(from, to time.Time) bool {
	return !from.Truncate(time.Minute).Equal(to.Truncate(time.Minute))
}

// TestIngressTCUnderGRO turns GRO on at the host's end of the link and
// counts with a TC ingress program (XDP_MODE=tc), which sees the packets
// GRO merged. The reference count is taken on the clients' end, where the
// frames are as they crossed the wire; a capture on the host's end shows
// that GRO did merge them. (Generic XDP needs no such test: the kernel
// turns GRO off on an interface with a generic XDP program.)
func TestIngressTCUnderGRO(t *testing.T) {
	kerneltest.RequireRoot(t)
	if !kerneltest.AtLeast(5, 13) {
		t.Skipf("kernel %s: veth does GRO without an XDP program only from 5.13, so nothing is merged; TestEndToEnd covers XDP_MODE=tc", kerneltest.Release())
	}
	l := labtest.New(t)
	labtest.InHost(t, l, "ethtool", "-K", l.HostIf, "gro", "on")
	db := filepath.Join(t.TempDir(), "collector.db")
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0",
		"-reverse-dns", "0", "-xdp-mode", "tc")

	wire, err := l.CaptureClientSide(traffic.DefaultPorts)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		t.Fatal(err)
	}
	// One client at a time keeps bursts within the veth's receive ring,
	// whose overflow would drop a QUIC datagram the lab does not resend.
	client := l.ClientAddrs[0]
	if _, err := l.Traffic(context.Background(), lab.Spec{Clients: []netip.Addr{client}, Rounds: 3, StreamDown: 200_000}); err != nil {
		t.Fatal(err)
	}
	counted, err := wire.Stop()
	if err != nil {
		t.Fatal(err)
	}
	seen, err := merged.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	onWire, afterGRO := counted[client][traffic.Siamux][traffic.Down].Packets, seen[client][traffic.Siamux][traffic.Down].Packets
	if afterGRO >= onWire {
		t.Fatalf("GRO merged nothing (%d frames on the wire, %d packets after GRO): the test proves nothing", onWire, afterGRO)
	}
	t.Logf("%v siamux down: %d frames on the wire, %d packets after GRO", client, onWire, afterGRO)
	labtest.AssertSame(t, labtest.Stored(t, db), counted)
}
