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
	"golang.org/x/sys/unix"
)

// TestDrainIsExactUnderConcurrency runs the XDP program on two CPUs at once
// while a third goroutine drains every few milliseconds: every increment
// must come out of exactly one drain. The clients rotate, so both CPUs also
// race to insert the same new client after every swap.
func TestDrainIsExactUnderConcurrency(t *testing.T) {
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts})
	const (
		runners    = 2
		numClients = 64
	)
	perRunner := 1_500_000
	if testing.Short() {
		// Under software emulation (make test-kernels) a run costs
		// some 50 times more; the drains still race with the adds.
		perRunner = 150_000
	}
	frames := make([][]byte, numClients)
	for i := range frames {
		frames[i] = frame{src: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 100}.build()
	}
	frameLen := uint64(len(frames[0]))

	var (
		sum     traffic.Tally
		drains  int
		running atomic.Int32
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
			var cpus unix.CPUSet
			cpus.Set(r % runtime.NumCPU())
			if err := unix.SchedSetaffinity(0, &cpus); err != nil {
				errs <- err
				return
			}
			for i := range perRunner {
				// One run per call: with Repeat, an interrupted run is
				// restarted and counts some packets twice.
				if _, err := c.xdp.Run(&ebpf.RunOptions{Data: frames[(i+r)%numClients]}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for running.Load() > 0 {
		time.Sleep(3 * time.Millisecond)
		addDrain(t, c, &sum)
		drains++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	addDrain(t, c, &sum)

	want := traffic.Tally{Packets: uint64(runners * perRunner), Bytes: uint64(runners*perRunner) * frameLen}
	if sum != want {
		t.Fatalf("drained %+v over %d drains, want %+v exactly", sum, drains, want)
	}
	if drains < 20 {
		t.Fatalf("only %d drains ran during the traffic; the test did not exercise concurrent draining", drains)
	}
	t.Logf("%d packets on %d CPUs, %d drains: exact", want.Packets, runners, drains)
}

func addDrain(t *testing.T, c *Counters, sum *traffic.Tally) {
	t.Helper()
	for _, tr := range drained(t, c) {
		sum.Add(tr[traffic.Siamux][traffic.Down])
	}
}
