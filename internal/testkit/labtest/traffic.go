package labtest

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/back2basic/collector/lab"
	"github.com/back2basic/collector/traffic"
)

// Capture starts an AF_PACKET count of the frames of ports on the host's
// link, stopped when the test ends if the test did not stop it.
func Capture(tb testing.TB, l *lab.Lab, ports traffic.Ports) *lab.Capture {
	tb.Helper()
	capture, err := l.Capture(ports)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { capture.Stop() })
	return capture
}

// CapturedRounds drives rounds of traffic from every lab client and
// returns what a capture on the host's link counted, checking that every
// class and direction the lab sent was seen.
func CapturedRounds(tb testing.TB, l *lab.Lab, rounds int) map[netip.Addr]traffic.Traffic {
	tb.Helper()
	capture, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		tb.Fatal(err)
	}
	sent, err := l.Traffic(context.Background(), lab.Spec{Rounds: rounds})
	if err != nil {
		capture.Stop()
		tb.Fatal(err)
	}
	counted, err := capture.Stop()
	if err != nil {
		tb.Fatal(err)
	}
	for client, tr := range sent.Sia {
		for class := range traffic.NumClasses {
			for dir := range traffic.NumDirections {
				if tr[class][dir].Bytes > 0 && counted[client][class][dir].Packets == 0 {
					tb.Fatalf("capture saw no %v %v frames of %v; the lab traffic is broken", class, dir, client)
				}
			}
		}
	}
	return counted
}

// SteadyTraffic starts a capture and traffic from every lab client, a
// round every interval at most, that goes on until the returned function
// stops both and returns what the capture counted.
func SteadyTraffic(tb testing.TB, l *lab.Lab, interval time.Duration) (stop func() map[netip.Addr]traffic.Traffic) {
	tb.Helper()
	capture, err := l.Capture(traffic.DefaultPorts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var sent lab.Sent
	done := make(chan error, 1)
	go func() {
		var err error
		sent, err = l.Traffic(ctx, lab.Spec{Rounds: lab.Forever, Interval: interval})
		done <- err
	}()
	return func() map[netip.Addr]traffic.Traffic {
		tb.Helper()
		cancel()
		if err := <-done; err != nil {
			tb.Fatal(err)
		}
		counted, err := capture.Stop()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Logf("%d rounds of traffic", sent.Rounds)
		return counted
	}
}

// InHost runs a command in the lab's host namespace and returns its
// output; a failure fails tb.
func InHost(tb testing.TB, l *lab.Lab, name string, args ...string) string {
	tb.Helper()
	return InNS(tb, l.HostNS, name, args...)
}

// InNS runs a command in network namespace ns and returns its output; a
// failure fails tb.
func InNS(tb testing.TB, ns, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
