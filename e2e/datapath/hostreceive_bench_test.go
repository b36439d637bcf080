package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/internal/testkit/labtest"
	"github.com/back2basic/collector/internal/testkit/selfexec"
	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// The bulk stream of one measured run: whichever bound comes first.
const (
	streamLimit    = 2 << 30
	streamDuration = 10 * time.Second
	// streamRounds is how often every mode is run, the modes taking
	// turns, so a slow spell of a shared machine falls on all of them.
	streamRounds = 5
	// checkedStream is the stream of each run whose frames a capture
	// counts too, to hold the daemon's count against, at checkedRate: at
	// full speed the host's end of the veth drops frames in the slower
	// modes, which the capture on the clients' end has counted.
	checkedStream = 32 << 20
	checkedRate   = 25 << 20
)

// noProgram is the run without the daemon: the host as it is uncounted.
const noProgram bpfgo.XDPMode = "none"

// BenchmarkHostReceive measures what counting costs the host's own TCP
// receive: a bulk stream from a client to the siamux port, with no
// program, and with the daemon counting in each ingress mode (native XDP,
// which veth has, generic XDP and TC ingress). The link has a NIC's
// offloads (lab.NICOffloads): frames arrive one by one and the host's GRO
// merges them, unless the mode turns it off. It reports per mode the
// median over the rounds of throughput (Gbit/s), CPU per GB received
// (this process, where the sockets and the softirqs they raise run, plus
// ksoftirqd) and the frames per packet the host's IP layer saw (GRO's
// merging: 1 is none). Every run with the daemon first checks, on a
// paced stream from another client, that what it stored of that client
// equals a capture of its frames on the clients' end.
func BenchmarkHostReceive(b *testing.B) {
	kerneltest.RequireRoot(b)
	softirqd := ksoftirqdPids(b)
	modes := []bpfgo.XDPMode{noProgram, bpfgo.XDPNative, bpfgo.XDPGeneric, bpfgo.XDPViaTC}
	for b.Loop() {
		l := labtest.New(b)
		if err := l.NICOffloads(); err != nil {
			b.Fatal(err)
		}
		runs := map[bpfgo.XDPMode][]hostReceive{}
		for round := range streamRounds {
			for _, mode := range modes {
				r := receiveIn(b, l, mode, softirqd)
				b.Logf("round %d %-8s %s", round+1, mode, r)
				runs[mode] = append(runs[mode], r)
			}
		}
		// The table is printed, not logged: a benchmark's log is cut
		// after a few lines.
		fmt.Printf("host TCP receive, median (lowest-highest) of %d rounds:\n", streamRounds)
		fmt.Printf("%-8s | %-20s | %-20s | %s\n", "ingress", "Gbit/s", "CPU-s/GB", "frames/packet")
		for _, mode := range modes {
			gbits := spreadOf(runs[mode], func(r hostReceive) float64 { return r.gbits })
			cpu := spreadOf(runs[mode], func(r hostReceive) float64 { return r.cpuPerGB })
			frames := spreadOf(runs[mode], func(r hostReceive) float64 { return r.framesPerPacket })
			fmt.Printf("%-8s | %-20s | %-20s | %s\n", mode, gbits, cpu, frames)
			b.ReportMetric(gbits.median, string(mode)+"-Gbit/s")
			b.ReportMetric(cpu.median, string(mode)+"-CPU-s/GB")
			b.ReportMetric(frames.median, string(mode)+"-frames/packet")
		}
	}
}

// hostReceive is one measured stream.
type hostReceive struct {
	gbits           float64 // payload throughput, Gbit/s
	cpuPerGB        float64 // CPU seconds per GB of payload
	framesPerPacket float64 // segments per packet at the host's IP layer
}

func (r hostReceive) String() string {
	return fmt.Sprintf("%6.2f Gbit/s %6.3f CPU-s/GB %5.1f frames/packet", r.gbits, r.cpuPerGB, r.framesPerPacket)
}

// spread is one figure over the rounds.
type spread struct{ median, lowest, highest float64 }

func (s spread) String() string {
	return fmt.Sprintf("%.2f (%.2f-%.2f)", s.median, s.lowest, s.highest)
}

func spreadOf(runs []hostReceive, figure func(hostReceive) float64) spread {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = figure(r)
	}
	slices.Sort(v)
	return spread{median: v[len(v)/2], lowest: v[0], highest: v[len(v)-1]}
}

// receiveIn runs the daemon in mode (none for no daemon), checks its count
// of a captured stream from one client, and measures a bulk stream from
// another.
func receiveIn(b *testing.B, l *lab.Lab, mode bpfgo.XDPMode, softirqd []int) hostReceive {
	b.Helper()
	checked, measured := l.ClientAddrs[0], l.ClientAddrs[1]
	port := traffic.DefaultPorts.Siamux[0]
	var d *labtest.Daemon
	var counted map[netip.Addr]traffic.Traffic
	db := filepath.Join(b.TempDir(), "collector.db")
	if mode != noProgram {
		d = labtest.StartDaemon(b, l, selfexec.Collector(), "-sqlite-path", db, "-flush-interval", "1m", "-live-interval", "0",
			"-reverse-dns", "0", "-xdp-mode", string(mode))
		if want := "xdp=" + string(mode); !strings.Contains(d.Output(), want) {
			b.Fatalf("the daemon did not attach with %s:\n%s", want, d.Output())
		}
		capture, err := l.CaptureClientSide(traffic.DefaultPorts)
		if err != nil {
			b.Fatal(err)
		}
		spec := lab.StreamSpec{Client: checked, Port: port, Limit: checkedStream, For: streamDuration, Rate: checkedRate}
		if _, err := l.Stream(context.Background(), spec); err != nil {
			capture.Stop()
			b.Fatal(err)
		}
		if counted, err = capture.Stop(); err != nil {
			b.Fatal(err)
		}
	}

	before := sampleHost(b, l, softirqd)
	s, err := l.Stream(context.Background(), lab.StreamSpec{Client: measured, Port: port, Limit: streamLimit, For: streamDuration})
	if err != nil {
		b.Fatal(err)
	}
	after := sampleHost(b, l, softirqd)

	if d != nil {
		if err := d.Stop(); err != nil {
			b.Fatal(err)
		}
		stored := labtest.Stored(b, db)
		labtest.AssertSame(b, map[string]traffic.Traffic{checked.String(): stored[checked.String()]}, counted)
		if got := stored[measured.String()][traffic.Siamux][traffic.Down].Bytes; got < uint64(s.Bytes) {
			b.Errorf("%s: stored %d bytes down for %v, less than the %d bytes of payload it sent", mode, got, measured, s.Bytes)
		}
	}
	gb := float64(s.Bytes) / 1e9
	return hostReceive{
		gbits:           gb * 8 / s.Elapsed.Seconds(),
		cpuPerGB:        (after.cpu - before.cpu).Seconds() / gb,
		framesPerPacket: (after.segments - before.segments) / (after.packets - before.packets),
	}
}

// hostSample is the counters a measurement takes the difference of.
type hostSample struct {
	cpu time.Duration // this process's user and system time, and ksoftirqd's
	// IP packets the host namespace received (Ip InReceives, an skb GRO
	// merged counting once) and the segments they held (IpExt
	// InNoECTPkts counts each GRO segment; the stream sends no ECN).
	packets, segments float64
}

func sampleHost(b *testing.B, l *lab.Lab, softirqd []int) hostSample {
	b.Helper()
	var s hostSample
	err := l.Do(l.HostNS, func() error {
		// /proc/<this thread>/net is the host namespace's.
		p, err := procfs.NewDefaultFS()
		if err != nil {
			return err
		}
		self, err := p.Proc(unix.Gettid())
		if err != nil {
			return err
		}
		snmp, err := self.Snmp()
		if err != nil {
			return err
		}
		netstat, err := self.Netstat()
		if err != nil {
			return err
		}
		if snmp.InReceives == nil || netstat.InNoECTPkts == nil {
			return fmt.Errorf("no Ip InReceives or IpExt InNoECTPkts in /proc/net/snmp, netstat")
		}
		s.packets, s.segments = *snmp.InReceives, *netstat.InNoECTPkts
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range softirqd {
		s.cpu += softirqTime(b, pid)
	}
	return s
}

// ksoftirqdPids are the per-CPU threads that run softirqs the CPU could
// not finish where they were raised; the datapath's cost lands there
// under load.
func ksoftirqdPids(b *testing.B) []int {
	b.Helper()
	procs, err := procfs.AllProcs()
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, p := range procs {
		if comm, err := p.Comm(); err == nil && strings.HasPrefix(comm, "ksoftirqd/") {
			pids = append(pids, p.PID)
		}
	}
	if len(pids) == 0 {
		b.Fatal("no ksoftirqd threads in /proc")
	}
	return pids
}

// softirqTime is how long thread pid has run, to the nanosecond.
func softirqTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	p, err := procfs.NewProc(pid)
	if err == nil {
		var st procfs.ProcSchedstat
		if st, err = p.Schedstat(); err == nil {
			return time.Duration(st.RunningNanoseconds)
		}
	}
	b.Fatal(err)
	return 0
}
