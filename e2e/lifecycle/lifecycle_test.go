package lifecycle

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// TestRestartKeepsCounting kills the daemon with SIGKILL in the middle of
// real traffic, keeps the traffic going while no daemon runs, starts it
// again, and expects the stored totals to equal the frame count exactly:
// the pinned programs counted on, and the new start took over their links
// and drained what they counted.
func TestRestartKeepsCounting(t *testing.T) {
	kerneltest.RequireRoot(t)
	for _, tc := range []bpfgo.TCMode{bpfgo.TCX, bpfgo.TCLegacy} {
		t.Run("tc="+string(tc), func(t *testing.T) {
			if tc == bpfgo.TCX {
				kerneltest.RequireTCX(t)
			}
			l := labtest.New(t)
			pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
			db := filepath.Join(t.TempDir(), "collector.db")
			args := []string{"-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0",
				"-reverse-dns", "0", "-pinned-maps", "1", "-pin-path", pins, "-tc-mode", string(tc)}

			first := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
			stopTraffic := labtest.SteadyTraffic(t, l, 20*time.Millisecond)

			time.Sleep(500 * time.Millisecond)
			awayFromFlush()
			first.Kill()
			time.Sleep(500 * time.Millisecond) // counted by the pinned programs alone
			second := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
			if !strings.Contains(second.Output(), "kept_pinned_links=true") {
				t.Errorf("the second start attached again instead of taking over the pinned links")
			}
			time.Sleep(500 * time.Millisecond)

			counted := stopTraffic()
			if err := second.Stop(); err != nil {
				t.Fatal(err)
			}
			labtest.AssertSame(t, labtest.Stored(t, db), counted)

			labtest.InHost(t, l, selfexec.Collector(), "detach", "-config", os.DevNull, "-pin-path", pins, "-interface", l.HostIf)
			assertDetached(t, l, pins)
		})
	}
}

// awayFromFlush waits, if need be, until the wall clock is well inside a
// minute, away from the flushes of a one-minute FLUSH_INTERVAL: a SIGKILL
// between a flush's drain and its commit loses that drain.
func awayFromFlush() {
	if s := time.Now().Second(); s < 5 || s > 55 {
		time.Sleep(time.Duration((65-s)%60) * time.Second)
	}
}

// assertDetached checks nothing of ours is left on the lab's host link.
func assertDetached(t *testing.T, l *lab.Lab, pins string) {
	t.Helper()
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Errorf("pin directory %s still there after detach (%v)", pins, err)
	}
	if out := labtest.InHost(t, l, "ip", "link", "show", "dev", l.HostIf); strings.Contains(out, "xdp") {
		t.Errorf("an XDP program is still attached:\n%s", out)
	}
	if out := labtest.InHost(t, l, "tc", "qdisc", "show", "dev", l.HostIf); strings.Contains(out, "clsact") {
		t.Errorf("a clsact qdisc is still there:\n%s", out)
	}
	if n := tcxLinks(t); n != 0 {
		t.Errorf("%d TCX links of ours are still attached", n)
	}
}

// tcxLinks counts the TCX links in the system that run our egress program.
func tcxLinks(t *testing.T) int {
	t.Helper()
	it := new(link.Iterator)
	n := 0
	for it.Next() {
		info, err := it.Take().Info()
		if err != nil || info.Type != link.TCXType {
			continue
		}
		prog, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			continue
		}
		if pi, err := prog.Info(); err == nil && pi.Name == "tc_count" {
			n++
		}
		prog.Close()
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLegacyTCLeavesOthersAlone checks collector removes the clsact qdisc
// it added, and, where another tool's qdisc and filter were there first,
// adds its filter beside them and removes only its own.
func TestLegacyTCLeavesOthersAlone(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	args := []string{"-sqlite-path", filepath.Join(t.TempDir(), "c.db"), "-live-interval", "0", "-reverse-dns", "0", "-tc-mode", "legacy"}

	d := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	if qdiscs := labtest.InHost(t, l, "tc", "qdisc", "show", "dev", l.HostIf); !strings.Contains(qdiscs, "clsact") {
		t.Fatalf("no clsact qdisc in legacy mode:\n%s", qdiscs)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if qdiscs := labtest.InHost(t, l, "tc", "qdisc", "show", "dev", l.HostIf); strings.Contains(qdiscs, "clsact") {
		t.Fatalf("the clsact qdisc collector added is still there after stop:\n%s", qdiscs)
	}

	labtest.InHost(t, l, "tc", "qdisc", "add", "dev", l.HostIf, "clsact")
	// A classic BPF filter that matches nothing stands for another tool's.
	labtest.InHost(t, l, "tc", "filter", "add", "dev", l.HostIf, "egress", "prio", "10", "bpf", "bytecode", "1,6 0 0 0,")

	d = labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	filters := labtest.InHost(t, l, "tc", "filter", "show", "dev", l.HostIf, "egress")
	if !strings.Contains(filters, "tc_count") || !strings.Contains(filters, "bytecode") {
		t.Fatalf("want our filter beside the other one:\n%s", filters)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	filters = labtest.InHost(t, l, "tc", "filter", "show", "dev", l.HostIf, "egress")
	if strings.Contains(filters, "tc_count") || !strings.Contains(filters, "bytecode") {
		t.Fatalf("after stop want only the other filter:\n%s", filters)
	}
	if qdiscs := labtest.InHost(t, l, "tc", "qdisc", "show", "dev", l.HostIf); !strings.Contains(qdiscs, "clsact") {
		t.Fatalf("the clsact qdisc we did not add was removed:\n%s", qdiscs)
	}
}

// TestInterfaceComesAndGoes watches two interfaces, removes one while the
// daemon runs and adds it back: that is logged and attached again, not
// fatal. Frames of one client then reach the host on both interfaces, and
// its rows hold the sum of the two.
func TestInterfaceComesAndGoes(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	addExtra := func() {
		labtest.InHost(t, l, "ip", "link", "add", "extra0", "type", "veth", "peer", "extra1")
		labtest.InHost(t, l, "ip", "link", "set", "extra0", "up")
		labtest.InHost(t, l, "ip", "link", "set", "extra1", "up")
	}
	addExtra()
	db := filepath.Join(t.TempDir(), "c.db")
	d := labtest.StartDaemon(t, l, selfexec.Collector(), "-interface", l.HostIf+",extra0", "-sqlite-path", db,
		"-flush-interval", "1m", "-live-interval", "0", "-reverse-dns", "0")

	labtest.InHost(t, l, "ip", "link", "del", "extra0")
	d.WaitFor(t, "interface is gone")
	addExtra()
	d.WaitFor(t, "interface is back, counting again")

	client := l.ClientAddrs[0]
	capture, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Traffic(context.Background(), lab.Spec{Clients: []netip.Addr{client}}); err != nil {
		t.Fatal(err)
	}
	counted, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	injected := injectSiamux(t, l, "extra1", client, 3)
	// The peer receives in its NAPI poll, a moment after the send.
	time.Sleep(100 * time.Millisecond)
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	want := counted[client]
	want[traffic.Siamux][traffic.Down].Add(injected)
	labtest.AssertSame(t, labtest.Stored(t, db), map[netip.Addr]traffic.Traffic{client: want})
}

// injectSiamux sends n frames from client to the host's siamux port out of
// the lab host's interface dev, so that they arrive on its veth peer, and
// returns what they weigh.
func injectSiamux(t *testing.T, l *lab.Lab, dev string, client netip.Addr, n int) traffic.Tally {
	t.Helper()
	frame := make([]byte, 14+20+20+100)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	ip := frame[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6 // IPv4, TTL, TCP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	src, dst := client.As4(), l.HostAddrs[0].As4()
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], traffic.DefaultPorts.Siamux[0])
	ip[32] = 5 << 4 // TCP data offset

	err := l.Do(l.HostNS, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for range n {
			if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inject frames on %s: %v", dev, err)
	}
	return traffic.Tally{Bytes: uint64(n * len(frame)), Packets: uint64(n)}
}

// TestOperatorErrors checks the failures an operator meets are one clear
// line and leave nothing attached.
func TestOperatorErrors(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	db := filepath.Join(t.TempDir(), "c.db")
	// run runs collector, optionally under another user (-1: root), and
	// returns its last line and exit status: 1 is worth a restart, 3 is
	// not (RestartPreventExitStatus).
	run := func(uid int, args ...string) (string, int) {
		t.Helper()
		argv := []string{"netns", "exec", l.HostNS}
		if uid >= 0 {
			argv = append(argv, "setpriv", fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups")
		}
		argv = append(argv, selfexec.Collector(), "run", "-config", os.DevNull, "-live-interval", "0", "-reverse-dns", "0")
		out, err := exec.Command("ip", append(argv, args...)...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("collector %v: want a failure, got %v:\n%s", args, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1], exit.ExitCode()
	}

	t.Run("missing interface", func(t *testing.T) {
		msg, status := run(-1, "-interface", "nosuch0", "-sqlite-path", db)
		if !strings.Contains(msg, "interface nosuch0") || !strings.Contains(msg, "ip -br link") || status != 1 {
			t.Fatalf("got %q, status %d", msg, status)
		}
	})
	t.Run("xdp already attached by another program", func(t *testing.T) {
		labtest.StartDaemon(t, l, selfexec.Collector(), "-sqlite-path", db, "-xdp-mode", "native")
		msg, status := run(-1, "-interface", l.HostIf, "-sqlite-path", filepath.Join(t.TempDir(), "other.db"), "-xdp-mode", "native")
		if !strings.Contains(msg, "another XDP program is attached there") || status != 1 {
			t.Fatalf("got %q, status %d", msg, status)
		}
	})
	t.Run("no privileges", func(t *testing.T) {
		// A database directory the unprivileged user can reach.
		dir, err := os.MkdirTemp("", "collector-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
		msg, status := run(65534, "-interface", l.HostIf, "-sqlite-path", filepath.Join(dir, "c.db"), "-pinned-maps", "1", "-pin-path", pins)
		if !strings.Contains(msg, "CAP_BPF") || status != 3 {
			t.Fatalf("got %q, status %d; want the capabilities named, status 3", msg, status)
		}
		if entries, _ := os.ReadDir(pins); len(entries) > 0 {
			t.Fatalf("a start that cannot succeed left pins: %v", entries)
		}
	})
	t.Run("pin path not on bpffs", func(t *testing.T) {
		msg, _ := run(-1, "-interface", l.HostIf, "-sqlite-path", db, "-pinned-maps", "1", "-pin-path", t.TempDir())
		if !strings.Contains(msg, "not on a bpffs") || !strings.Contains(msg, "mount -t bpf") {
			t.Fatalf("got %q", msg)
		}
		if out := labtest.InHost(t, l, "ip", "link", "show", "dev", l.HostIf); strings.Contains(out, "xdp") {
			t.Fatalf("a failed start left XDP attached:\n%s", out)
		}
	})
}

// pinnedDaemon returns a private pin directory and the arguments of a
// pinned daemon using it, and detaches whatever is pinned there when the
// test ends.
func pinnedDaemon(t *testing.T) (pins string, args []string) {
	t.Helper()
	pins = filepath.Join(kerneltest.MountBPFFS(t), "collector")
	t.Cleanup(func() { exec.Command(selfexec.Collector(), "detach", "-config", os.DevNull, "-pin-path", pins).Run() })
	return pins, []string{"-sqlite-path", filepath.Join(t.TempDir(), "c.db"), "-live-interval", "0", "-reverse-dns", "0",
		"-pinned-maps", "1", "-pin-path", pins}
}

// TestInterfaceDropped restarts a pinned daemon with its interface taken
// out of INTERFACE: the links left on it are detached, and that is logged.
func TestInterfaceDropped(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	pins, args := pinnedDaemon(t)

	first := labtest.StartDaemon(t, l, selfexec.Collector(), args...)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if out := labtest.InHost(t, l, "ip", "link", "show", "dev", l.HostIf); !strings.Contains(out, "xdp") {
		t.Fatalf("the pinned XDP link must outlive the daemon:\n%s", out)
	}
	// A mistyped name fails the start and leaves the last good list
	// counting.
	if _, err := l.StartDaemon(selfexec.Collector(), nil, append(args, "-interface", "nosuch0")...); err == nil {
		t.Fatal("a start on a missing interface succeeded")
	}
	if out := labtest.InHost(t, l, "ip", "link", "show", "dev", l.HostIf); !strings.Contains(out, "xdp") {
		t.Fatalf("a failed start detached the interface that counted:\n%s", out)
	}
	labtest.InHost(t, l, "ip", "link", "add", "other0", "type", "veth", "peer", "name", "other1")
	labtest.InHost(t, l, "ip", "link", "set", "other0", "up")
	labtest.InHost(t, l, "ip", "link", "set", "other1", "up")
	second := labtest.StartDaemon(t, l, selfexec.Collector(), append(args, "-interface", "other0")...)
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	if out := second.Output(); !strings.Contains(out, "detached from an interface no longer in INTERFACE") || !strings.Contains(out, "interface="+l.HostIf) {
		t.Errorf("the detach was not logged:\n%s", out)
	}
	if link := labtest.InHost(t, l, "ip", "link", "show", "dev", l.HostIf); strings.Contains(link, "xdp") {
		t.Errorf("XDP is still attached to %s, which left INTERFACE:\n%s", l.HostIf, link)
	}
	if n := tcxLinks(t); kerneltest.HaveTCX() && n != 1 {
		t.Errorf("%d TCX links of ours, want 1 (on other0)", n)
	}
	if _, err := os.Stat(filepath.Join(pins, "links", l.HostIf)); !os.IsNotExist(err) {
		t.Errorf("the links of %s are still pinned (%v)", l.HostIf, err)
	}
}

// TestPinnedModeChange restarts a pinned daemon in other ingress and
// egress modes: each start leaves attached exactly what its modes use, so
// no earlier hook goes on counting the same packets.
func TestPinnedModeChange(t *testing.T) {
	kerneltest.RequireRoot(t)
	l := labtest.New(t)
	pins, args := pinnedDaemon(t)

	for _, tc := range []struct {
		xdp, tc   string
		xdpOnLink string // what ip link shows, "" for no XDP
		pinned    []string
		filters   int // our legacy filters
	}{
		{"native", "tcx", "xdp ", []string{"tcx", "xdp"}, 0},
		{"native", "tcx", "xdp ", []string{"tcx", "xdp"}, 0},
		{"generic", "tcx", "xdpgeneric", []string{"tcx", "xdp"}, 0},
		{"tc", "tcx", "", []string{"tcx", "tcx-ingress"}, 0},
		{"tc", "legacy", "", nil, 2},
		{"native", "legacy", "xdp ", []string{"xdp"}, 1},
		{"generic", "legacy", "xdpgeneric", []string{"xdp"}, 1},
		{"native", "tcx", "xdp ", []string{"tcx", "xdp"}, 0},
	} {
		if tc.tc == "tcx" && !kerneltest.HaveTCX() {
			t.Logf("kernel %s has no TCX (6.6+): xdp=%s tc=tcx not run", kerneltest.Release(), tc.xdp)
			continue
		}
		d := labtest.StartDaemon(t, l, selfexec.Collector(), append(args, "-xdp-mode", tc.xdp, "-tc-mode", tc.tc)...)
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("xdp=%s tc=%s", tc.xdp, tc.tc); !strings.Contains(d.Output(), want) {
			t.Fatalf("asked for %s:\n%s", want, d.Output())
		}
		link := labtest.InHost(t, l, "ip", "link", "show", "dev", l.HostIf)
		if tc.xdpOnLink == "" && strings.Contains(link, "xdp") || tc.xdpOnLink != "" && !strings.Contains(link, tc.xdpOnLink) {
			t.Fatalf("xdp=%s tc=%s: want %q on the link:\n%s", tc.xdp, tc.tc, tc.xdpOnLink, link)
		}
		var pinned []string
		entries, _ := os.ReadDir(filepath.Join(pins, "links", l.HostIf))
		for _, e := range entries {
			if !e.IsDir() {
				pinned = append(pinned, e.Name())
			}
		}
		if !slices.Equal(pinned, tc.pinned) {
			t.Fatalf("xdp=%s tc=%s: pinned links %v, want %v", tc.xdp, tc.tc, pinned, tc.pinned)
		}
		filters := 0
		for _, hook := range []string{"ingress", "egress"} {
			filters += strings.Count(labtest.InHost(t, l, "tc", "filter", "show", "dev", l.HostIf, hook), "handle 0xc011")
		}
		if filters != tc.filters {
			t.Fatalf("xdp=%s tc=%s: %d legacy filters of ours, want %d", tc.xdp, tc.tc, filters, tc.filters)
		}
	}
}
