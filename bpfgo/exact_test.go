package bpfgo

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/back2basic/collector/traffic"
	"github.com/cilium/ebpf"
)

// TestDrainIsExactUnderConcurrency runs the XDP and TC programs on two CPUs
// at once while a third goroutine drains every few milliseconds: every
// increment must come out of exactly one drain. The clients rotate, so
// both CPUs also race to insert the same new client after every swap. The
// counter map has room for a quarter of them: the rest prove themselves
// with the host's data at egress and are counted in the proven map, so
// both maps are swapped under traffic.
func TestDrainIsExactUnderConcurrency(t *testing.T) {
	const (
		runners    = 2
		numClients = 64
		maxClients = numClients / 4
	)
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, MaxClients: maxClients, ProvenClients: numClients})
	perRunner := 1_500_000
	if testing.Short() {
		// Under software emulation (make test-kernels) a run costs
		// some 50 times more; the drains still race with the adds.
		perRunner = 150_000
	}
	// Even runs are a client's frame in, odd ones the host's answer out.
	frames := make([][]byte, 2*numClients)
	for i := range numClients {
		answer := tcpData(host4, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
		frames[2*i], frames[2*i+1] = reversed(answer).build(), answer.build()
	}
	frameLen := uint64(len(frames[0]))
	progs := [2]*ebpf.Program{c.xdp, c.tc}

	var (
		sum     [2]traffic.Tally // down, up
		drains  int
		widest  int // the most clients one drain returned
		running atomic.Int32
		stop    atomic.Bool     // set once enough drains ran
		sent    [runners]uint64 // frames each runner ran, an even number
		wg      sync.WaitGroup
		errs    = make(chan error, runners)
	)
	running.Store(runners)
	for r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			// Each runner keeps to its own CPU so the adds really race.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := onCPU(r % runtime.NumCPU()); err != nil {
				errs <- err
				return
			}
			// At least perRunner frames, and on until 20 drains ran,
			// however slow the machine: ending on an even count, as
			// many frames in as out.
			for i := 0; ; i++ {
				if i >= perRunner && i%2 == 0 && stop.Load() {
					sent[r] = uint64(i)
					return
				}
				// One run per call: with Repeat, an interrupted run is
				// restarted and counts some packets twice.
				f := (i + 2*r) % len(frames)
				if _, err := progs[f%2].Run(&ebpf.RunOptions{Data: frames[f]}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for running.Load() > 0 {
		time.Sleep(3 * time.Millisecond)
		widest = max(widest, addDrain(t, c, &sum))
		drains++
		if drains >= 20 {
			stop.Store(true)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	addDrain(t, c, &sum)

	// Each runner ran as many frames in as out.
	each := (sent[0] + sent[1]) / 2
	want := traffic.Tally{Packets: each, Bytes: each * frameLen}
	if sum[0] != want || sum[1] != want {
		t.Fatalf("drained %+v down and %+v up over %d drains, want %+v each exactly", sum[0], sum[1], drains, want)
	}
	if widest <= maxClients {
		t.Fatalf("no drain returned more than the counter map's %d clients: the proven map was not used", maxClients)
	}
	t.Logf("%d packets on %d CPUs, %d drains, up to %d clients in one: exact", 2*want.Packets, runners, drains, widest)
}

// addDrain drains c, adds its siamux traffic down and up to sum, and
// returns how many clients (not counting 'other') it held.
func addDrain(t *testing.T, c *Counters, sum *[2]traffic.Tally) int {
	t.Helper()
	got := drained(t, c)
	for _, tr := range got {
		sum[0].Add(tr[traffic.Siamux][traffic.Down])
		sum[1].Add(tr[traffic.Siamux][traffic.Up])
	}
	_, other := got[netip.Addr{}]
	if other {
		return len(got) - 1
	}
	return len(got)
}
