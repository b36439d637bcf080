package bpfgo

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/traffic"
)

// oldEntry is an entry of a counter map of a released layout, written as
// bytes the way that layout's datapath wrote it.
type oldEntry struct {
	addr    netip.Addr // the invalid Addr for the overflow entry
	traffic traffic.Traffic
	flags   uint64
}

func (e oldEntry) key() []byte {
	k := make([]byte, 16)
	if e.addr.IsValid() {
		a := e.addr.As16()
		copy(k, a[:])
	}
	return k
}

func (e oldEntry) value(size int) []byte {
	var v []byte
	for c := range e.traffic {
		for d := range e.traffic[c] {
			v = binary.NativeEndian.AppendUint64(v, e.traffic[c][d].Bytes)
			v = binary.NativeEndian.AppendUint64(v, e.traffic[c][d].Packets)
		}
	}
	if size > len(v) {
		v = binary.NativeEndian.AppendUint64(v, e.flags)
	}
	return v
}

// pinOldLayout pins a slot and both counter maps of a layout with values
// of valueSize bytes, with entries in each map, as a stopped daemon of
// that release leaves them.
func pinOldLayout(t *testing.T, pins string, valueSize uint32, maxEntries uint32, entries [2][]oldEntry) {
	t.Helper()
	if err := ensurePinDir(pins); err != nil {
		t.Fatal(err)
	}
	inner := &ebpf.MapSpec{Type: ebpf.Hash, KeySize: 16, ValueSize: valueSize, MaxEntries: maxEntries}
	slot, err := ebpf.NewMapWithOptions(&ebpf.MapSpec{
		Name: "clients", Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 1, InnerMap: inner, Pinning: ebpf.PinByName,
	}, ebpf.MapOptions{PinPath: pins})
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Close()
	for i, name := range counterMapNames {
		spec := inner.Copy()
		spec.Name, spec.Pinning = name, ebpf.PinByName
		m, err := ebpf.NewMapWithOptions(spec, ebpf.MapOptions{PinPath: pins})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries[i] {
			if err := m.Put(e.key(), e.value(int(valueSize))); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			if err := slot.Update(uint32(0), m, ebpf.UpdateAny); err != nil {
				t.Fatal(err)
			}
		}
		m.Close()
	}
}

// TestOldLayoutIsCarriedOver pins counter maps of each released layout
// with counts in both: the load sets them aside, DrainCarried returns
// exactly what they held, Release removes them, and the new maps count.
func TestOldLayoutIsCarriedOver(t *testing.T) {
	var siamux, quic, both traffic.Traffic
	siamux[traffic.Siamux][traffic.Down] = traffic.Tally{Bytes: 1500, Packets: 1}
	siamux[traffic.Siamux][traffic.Up] = traffic.Tally{Bytes: 70000, Packets: 50}
	quic[traffic.QUIC][traffic.Down] = traffic.Tally{Bytes: 1 << 40, Packets: 1 << 30}
	both[traffic.Consensus][traffic.Up] = traffic.Tally{Bytes: 90, Packets: 1}
	both[traffic.QUIC][traffic.Up] = traffic.Tally{Bytes: 1200, Packets: 1}
	entries := [2][]oldEntry{
		{{addr: client4, traffic: siamux, flags: flagProven}, {traffic: both, flags: flagProven}, {addr: client6}},
		{{addr: client6, traffic: quic}, {addr: client4, traffic: both}},
	}
	for _, tc := range []struct {
		name       string
		valueSize  uint32
		maxEntries uint32
	}{
		{"96-byte values, before the proof", 96, DefaultMaxClients + 1},
		{"104-byte values, another MAX_CLIENTS", 104, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pins := pinDir(t)
			pinOldLayout(t, pins, tc.valueSize, tc.maxEntries, entries)

			var logs bytes.Buffer
			c := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if strings.Contains(logs.String(), "lost") {
				t.Errorf("the load says something is lost:\n%s", logs.String())
			}
			carried, err := c.DrainCarried()
			if err != nil {
				t.Fatal(err)
			}
			if len(carried) != 2 {
				t.Fatalf("carried %d maps, want both counter maps", len(carried))
			}
			want := map[traffic.Client]traffic.Sample{}
			for _, m := range entries {
				for _, e := range m {
					if e.traffic.IsZero() {
						continue // an entry still zero is nothing counted
					}
					client := traffic.ClientOf(e.addr)
					s := want[client]
					s.Client = client
					s.Traffic.Add(&e.traffic)
					s.Proven = s.Proven || (tc.valueSize == 104 && e.addr.IsValid() && e.flags&flagProven != 0)
					want[client] = s
				}
			}
			got := map[traffic.Client]traffic.Sample{}
			ids := map[string]bool{}
			for _, m := range carried {
				ids[m.ID] = true
				for _, s := range m.Samples {
					sum := got[s.Client]
					sum.Client = s.Client
					sum.Traffic.Add(&s.Traffic)
					sum.Proven = sum.Proven || s.Proven
					got[s.Client] = sum
				}
			}
			if len(ids) != 2 {
				t.Errorf("carried map IDs %v are not one for each map", ids)
			}
			if len(got) != len(want) {
				t.Errorf("carried clients %v, want %v", got, want)
			}
			for client, w := range want {
				if got[client] != w {
					t.Errorf("%s: carried %+v, want %+v", client, got[client], w)
				}
			}

			for _, m := range carried {
				if err := m.Release(); err != nil {
					t.Fatal(err)
				}
			}
			if again, err := c.DrainCarried(); err != nil || len(again) != 0 {
				t.Errorf("after Release: %d carried maps (%v)", len(again), err)
			}
			data := tcpData(host4, client4).build()
			egress(t, c, data, nil)
			if s := drainedSamples(t, c)[client4]; s.Traffic != one(traffic.Siamux, traffic.Up, len(data)) {
				t.Errorf("the new maps counted %+v", s)
			}
		})
	}
}

// TestCarriedPinsOutliveAStart: a start that stops before storing what
// it set aside leaves the pins, and the next start carries them over.
func TestCarriedPinsOutliveAStart(t *testing.T) {
	pins := pinDir(t)
	var siamux traffic.Traffic
	siamux[traffic.Siamux][traffic.Down] = traffic.Tally{Bytes: 1500, Packets: 1}
	pinOldLayout(t, pins, 96, DefaultMaxClients+1, [2][]oldEntry{{{addr: client6, traffic: siamux}}})

	first := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins})
	if _, err := first.DrainCarried(); err != nil {
		t.Fatal(err)
	}
	first.Close() // stopped before the counts were stored and released

	second := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins})
	carried, err := second.DrainCarried()
	if err != nil {
		t.Fatal(err)
	}
	var samples []traffic.Sample
	for _, m := range carried {
		samples = append(samples, m.Samples...)
	}
	if len(samples) != 1 || samples[0].Client != traffic.ClientOf(client6) || samples[0].Traffic != siamux {
		t.Errorf("the second start carried %+v, want %s with %+v", samples, client6, siamux)
	}
	entries, err := os.ReadDir(filepath.Join(pins, carryDir))
	if err != nil || len(entries) != 2 {
		t.Errorf("pins set aside: %v (%v), want both counter maps", entries, err)
	}
}

// TestUnknownLayoutStaysPinned: maps of a layout this release cannot read
// (a later release's, after a downgrade) are set aside all the same, and
// DrainCarried names them and leaves them pinned.
func TestUnknownLayoutStaysPinned(t *testing.T) {
	pins := pinDir(t)
	pinOldLayout(t, pins, 112, DefaultMaxClients+1, [2][]oldEntry{})

	c := loadCounters(t, Config{Ports: traffic.DefaultPorts, PinPath: pins})
	carried, err := c.DrainCarried()
	if err == nil || !strings.Contains(err.Error(), "112-byte values") {
		t.Errorf("DrainCarried: %v, want an error naming the 112-byte values", err)
	}
	if len(carried) != 0 {
		t.Errorf("carried %d maps of an unknown layout", len(carried))
	}
	if entries, _ := os.ReadDir(filepath.Join(pins, carryDir)); len(entries) != 2 {
		t.Errorf("pins set aside: %v, want both counter maps still there", entries)
	}
}
