package bpfgo

import (
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/traffic"
)

// pinDir is a pin directory on a private bpffs.
func pinDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(kerneltest.MountBPFFS(t), "collector")
}

// TestPinnedCountsSurviveTheProcess counts with one loader, lets go of it
// without draining (a daemon stopped or killed), and expects the next
// loader on the same pins to drain those counts, in whichever of the two
// counter maps they were.
func TestPinnedCountsSurviveTheProcess(t *testing.T) {
	pins := pinDir(t)
	cfg := Config{Ports: traffic.DefaultPorts}
	cfg.PinPath = pins
	data := frame{src: client4, dst: host4, proto: tcp, sport: 40000, dport: 9984, payload: 10}.build()

	first := loadCounters(t, cfg)
	ingress(t, first, data)
	drained(t, first) // the other map is now in the slot
	ingress(t, first, data)
	ingress(t, first, data)
	first.Close()

	second := loadCounters(t, cfg)
	want := traffic.Traffic{}
	want[traffic.Siamux][traffic.Down] = traffic.Tally{Bytes: 2 * uint64(len(data)), Packets: 2}
	assertTraffic(t, drained(t, second), map[netip.Addr]traffic.Traffic{client4: want})
}

// TestFailedLoadRemovesOnlyItsPins: a start that fails after pinning
// removes the pins it made and keeps those of an earlier run, which may
// hold what was counted.
func TestFailedLoadRemovesOnlyItsPins(t *testing.T) {
	pins := pinDir(t)
	kept := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins})
	kept.Close()
	if err := os.Remove(filepath.Join(pins, counterMapNames[1])); err != nil {
		t.Fatal(err)
	}
	before := existingPins(pins)

	again := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins}) // pins counters_b anew
	again.Close()
	if err := removeNewPins(pins, before); err != nil {
		t.Fatal(err)
	}
	got := existingPins(pins)
	want := map[string]bool{"clients": true, counterMapNames[0]: true, "proven_clients": true, provenMapNames[0]: true, provenMapNames[1]: true,
		"last_clients": true, cacheMapNames[0]: true, cacheMapNames[1]: true}
	if !maps.Equal(got, want) {
		t.Errorf("pins left: %v, want %v", got, want)
	}
}
