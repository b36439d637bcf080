package daemon

import (
	"bytes"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/back2basic/collector/bpf"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/testkit/kerneltest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// TestCarryOverAfterACrashStoresOnce: a start that stored a carried map
// but stopped before releasing its pin leaves it for the next start,
// which releases it without storing it again and stores the map the
// first start had not reached.
func TestCarryOverAfterACrashStoresOnce(t *testing.T) {
	kerneltest.RequireRoot(t)
	pins := filepath.Join(kerneltest.MountBPFFS(t), "collector")
	client := netip.MustParseAddr("2001:db8::7")
	var counted bpf.CollectorClientTraffic
	counted.T[traffic.Siamux][traffic.Down] = bpf.CollectorTally{Bytes: 1500, Packets: 1}

	// An earlier run with another MAX_CLIENTS left a count in each
	// counter map.
	earlier, err := bpfgo.Load(bpfgo.Config{Ports: traffic.DefaultPorts, PinPath: pins, MaxClients: 8})
	if err != nil {
		t.Fatal(err)
	}
	earlier.Close()
	for _, name := range []string{"counters_a", "counters_b"} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pins, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Put(bpf.CollectorClientKey{Addr: client.As16()}, counted); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}

	st, err := store.Open(filepath.Join(t.TempDir(), "collector.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counters, err := bpfgo.Load(bpfgo.Config{Ports: traffic.DefaultPorts, PinPath: pins})
	if err != nil {
		t.Fatal(err)
	}
	defer counters.Close()

	// The start that crashed stored the first map, and released nothing.
	carried, err := counters.DrainCarried()
	if err != nil || len(carried) != 2 {
		t.Fatalf("carried %d maps (%v), want both counter maps", len(carried), err)
	}
	rows, proven := rowsAt(time.Now().Truncate(time.Minute), carried[0].Samples)
	if _, err := st.WriteOnce(t.Context(), carried[0].ID, rows, proven); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	c := &collector{log: slog.New(slog.NewTextHandler(&logs, nil)), store: st, counters: counters}
	if err := c.carryOver(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got traffic.Traffic
	err = st.Rows(t.Context(), store.Minutes, store.Query{}, func(r *store.Row) error {
		got.Add(&r.Traffic)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * counted.T[traffic.Siamux][traffic.Down].Bytes; got.Bytes() != want {
		t.Errorf("stored %d bytes, want %d: each map once", got.Bytes(), want)
	}
	if !strings.Contains(logs.String(), "maps=1 clients=1 bytes=1500 packets=1") || !strings.Contains(logs.String(), "maps_stored_by_an_earlier_start=1") {
		t.Errorf("the journal line does not say what was carried over:\n%s", logs.String())
	}
	if again, err := counters.DrainCarried(); err != nil || len(again) != 0 {
		t.Errorf("after the carry-over %d maps are still set aside (%v)", len(again), err)
	}
}
