package beside_test

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "traffic.db"), store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// wire stores one minute of traffic of two clients at 10:00+minute.
func wire(t *testing.T, st *store.Store, minute int, consensusUp, siamuxUp, quicUp, down uint64) {
	t.Helper()
	var a, b traffic.Traffic
	a[traffic.Consensus][traffic.Up].Bytes = consensusUp
	a[traffic.Siamux][traffic.Up].Bytes = siamuxUp
	b[traffic.QUIC][traffic.Up].Bytes = quicUp
	b[traffic.QUIC][traffic.Down].Bytes = down
	a[traffic.Consensus][traffic.Down].Bytes = down
	start := t0.Add(time.Duration(minute) * time.Minute)
	rows := []traffic.Row{
		{Start: start, Client: traffic.ClientOf(netip.MustParseAddr("192.0.2.1")), Traffic: a},
		{Start: start, Client: traffic.ClientOf(netip.MustParseAddr("2001:db8::2")), Traffic: b},
	}
	if err := st.Consume(t.Context(), traffic.Period{Start: start, End: start.Add(time.Minute), Rows: rows}); err != nil {
		t.Fatal(err)
	}
}

func period(minute int, rhpIn, rhpOut uint64, syncer *store.HostdData, paid *uint64) store.HostdFigures {
	return store.HostdFigures{Start: t0.Add(time.Duration(minute) * time.Minute), Periods: 1, RHP: store.HostdData{Ingress: rhpIn, Egress: rhpOut},
		Syncer: syncer, PaidEgress: paid, EgressPrice: 50, Version: "v2.10.2", QUIC: true}
}

func ptr[T any](v T) *T { return &v }

func TestCompare(t *testing.T) {
	st := openStore(t)
	for m := range 15 {
		wire(t, st, m, 100, 1000, 500, 50) // a minute: consensus 100 up 50 down, RHP 1500 up 50 down
	}
	if err := st.WriteHostdPeriods(t.Context(), []store.HostdFigures{
		period(0, 200, 6000, &store.HostdData{Ingress: 200, Egress: 400}, ptr[uint64](3000)),
		period(5, 200, 6000, &store.HostdData{Ingress: 200, Egress: 400}, ptr[uint64](4500)),
	}); err != nil {
		t.Fatal(err)
	}
	// Asked to 10:15, the span stops where hostd's last period ends.
	f, ok, err := beside.Compare(t.Context(), st, t0, t0.Add(15*time.Minute))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if !f.Until.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("span cut at %v, want 10:10", f.Until)
	}
	if f.WireRHP != (store.HostdData{Ingress: 500, Egress: 15000}) || f.WireConsensus != (store.HostdData{Ingress: 500, Egress: 1000}) {
		t.Errorf("wire: rhp %+v consensus %+v", f.WireRHP, f.WireConsensus)
	}
	if f.RatioRHP == nil || *f.RatioRHP != 15500.0/12400 || f.RatioConsensus == nil || *f.RatioConsensus != 1500.0/1200 {
		t.Errorf("ratios %v %v, want %v %v", f.RatioRHP, f.RatioConsensus, 15500.0/12400, 1500.0/1200)
	}
	if f.UnpaidEgressShare == nil || *f.UnpaidEgressShare != 1-7500.0/15000 || f.PaidAboveWire {
		t.Errorf("unpaid share %v (above wire %v), want 0.5", f.UnpaidEgressShare, f.PaidAboveWire)
	}

	// Paid above the wire: share 0, said so; no syncer figures: no ratio.
	if err := st.WriteHostdPeriods(t.Context(), []store.HostdFigures{period(10, 0, 100, nil, ptr[uint64](1<<20))}); err != nil {
		t.Fatal(err)
	}
	f, ok, err = beside.Compare(t.Context(), st, t0.Add(10*time.Minute), t0.Add(time.Hour))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if f.UnpaidEgressShare == nil || *f.UnpaidEgressShare != 0 || !f.PaidAboveWire || f.RatioConsensus != nil {
		t.Errorf("paid above wire: share %v above %v ratio consensus %v", f.UnpaidEgressShare, f.PaidAboveWire, f.RatioConsensus)
	}
	if _, ok, err := beside.Compare(t.Context(), st, t0.Add(time.Hour), t0.Add(2*time.Hour)); ok || err != nil {
		t.Errorf("a span without hostd's periods: ok %v err %v", ok, err)
	}
}
