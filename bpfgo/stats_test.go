package bpfgo

import (
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	"github.com/back2basic/collector/traffic"
)

// The map's entries are the clients it held when drained, seeded ones that
// sent nothing included, the overflow entry not: a full map holds as many
// as its capacity.
func TestCounterStats(t *testing.T) {
	const maxClients = 4
	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, MaxClients: maxClients})
	check := func(what string, drains uint64, entries int) {
		t.Helper()
		s := c.Stats()
		if s.Drains != drains || s.MapEntries != entries || s.MapCapacity != maxClients {
			t.Errorf("%s: Drains, MapEntries, MapCapacity = %d, %d, %d, want %d, %d, %d",
				what, s.Drains, s.MapEntries, s.MapCapacity, drains, entries, maxClients)
		}
		if (s.Drains == 0) != (s.DrainTime == 0) {
			t.Errorf("%s: %d drains took %v", what, s.Drains, s.DrainTime)
		}
	}
	check("loaded", 0, 0)

	for i := range 10 {
		ingress(t, c, frame{src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), dst: host4, proto: tcp, sport: 40000, dport: 9984}.build())
	}
	drained(t, c)
	check("full", 1, maxClients)

	c.Seed([]netip.Addr{client4, client6})
	drained(t, c) // swaps the seeded map in
	check("swapped the seeded map in", 2, 0)
	drained(t, c)
	check("seeded, quiet", 3, 2)
}

// Stats lists the interfaces counted on now, in the order they were
// named, and not those that are gone.
func TestInterfaceStats(t *testing.T) {
	s := &Interfaces{
		names: []string{"eth1", "eth0", "vlan7"},
		attached: map[string]*Attachment{
			"eth0": {Interface: "eth0", XDPMode: XDPNative, TCMode: TCX},
			"eth1": {Interface: "eth1", XDPMode: XDPViaTC, TCMode: TCLegacy},
		},
		attachErrors: 3,
		log:          slog.New(slog.DiscardHandler),
	}
	got := s.Stats()
	want := []AttachMode{{"eth1", XDPViaTC, TCLegacy}, {"eth0", XDPNative, TCX}}
	if !slices.Equal(got.Attached, want) || got.AttachErrors != 3 {
		t.Errorf("Stats = %+v, want %+v and 3 errors", got, want)
	}
}
