package metrics

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/store"
)

// hostdStore holds a quarter of an hour of traffic, ending 10 minutes ago,
// and hostd's periods of it.
func hostdStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "traffic.db"), store.Options{Log: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Now().Add(-25 * time.Minute).Truncate(5 * time.Minute)
	for i := range 15 {
		at := start.Add(time.Duration(i) * time.Minute)
		r := row("192.0.2.1", uint64(i+1))
		r.Start = at
		if err := st.Consume(t.Context(), minute(at, r)); err != nil {
			t.Fatal(err)
		}
	}
	var periods []store.HostdFigures
	for i := range 3 {
		paid := uint64(1000 * (i + 1))
		periods = append(periods, store.HostdFigures{Start: start.Add(time.Duration(i) * 5 * time.Minute), Periods: 1,
			RHP: store.HostdData{Ingress: 500, Egress: 4000}, Syncer: &store.HostdData{Ingress: 100, Egress: 200}, PaidEgress: &paid,
			EgressPrice: 120, Version: "v2.10.2", QUIC: true})
	}
	if err := st.WriteHostdPeriods(t.Context(), periods); err != nil {
		t.Fatal(err)
	}
	return st
}

// The series show what beside.Compare finds for the billing period.
func TestHostdSeries(t *testing.T) {
	st := hostdStore(t)
	// A billing period that began two days ago or earlier holds the
	// fixture whenever the test runs.
	cycle, err := billing.NewCycle(min(time.Now().UTC().AddDate(0, 0, -2).Day(), 28), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Config{Billing: cycle, Hostd: HostdOf(st), Log: discard})
	got := gather(t, m)
	p := cycle.Period(time.Now())
	f, ok, err := beside.Compare(t.Context(), st, p.Start, p.End)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := map[string]map[string]float64{
		"collector_hostd_billing_period_wire_bytes": {
			"class=rhp,direction=up": float64(f.WireRHP.Egress), "class=rhp,direction=down": float64(f.WireRHP.Ingress),
			"class=consensus,direction=up": float64(f.WireConsensus.Egress), "class=consensus,direction=down": float64(f.WireConsensus.Ingress),
		},
		"collector_hostd_billing_period_payload_bytes": {
			"class=rhp,direction=up": 12000, "class=rhp,direction=down": 1500, "class=syncer,direction=up": 600, "class=syncer,direction=down": 300,
		},
		"collector_hostd_wire_payload_ratio":                {"class=rhp": *f.RatioRHP, "class=consensus": *f.RatioConsensus},
		"collector_hostd_billing_period_paid_egress_bytes":  {"": 6000},
		"collector_hostd_unpaid_egress_ratio":               {"": *f.UnpaidEgressShare},
		"collector_hostd_billing_period_periods":            {"": 3},
		"collector_hostd_egress_price_siacoin_per_terabyte": {"": 120},
	}
	for name, series := range want {
		for labels, v := range series {
			if g, ok := got[name][labels]; !ok || g != v {
				t.Errorf("%s{%s} = %v (present %v), want %v", name, labels, g, ok, v)
			}
		}
	}
	if f.WireRHP.Egress == 0 || *f.UnpaidEgressShare <= 0 {
		t.Errorf("the fixture has no rhp egress beyond what was paid: %+v", f)
	}
	problems, err := testutil.GatherAndLint(NewRegistry(m))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	promtool(t, scrape(t, m), "check", "metrics")
}

// A failing read leaves the series out and is logged once.
func TestHostdSeriesLeftOutOnFailure(t *testing.T) {
	cycle, _ := billing.NewCycle(1, time.UTC)
	var log strings.Builder
	m := New(Config{Billing: cycle, Log: slog.New(slog.NewTextHandler(&log, nil)), Hostd: func(context.Context, billing.Period) (beside.Figures, bool, error) {
		return beside.Figures{}, false, errors.New("database is locked")
	}})
	for range 3 {
		for name := range gather(t, m) {
			if strings.HasPrefix(name, "collector_hostd_") {
				t.Errorf("%s emitted while its read failed", name)
			}
		}
	}
	if n := strings.Count(log.String(), "cannot read hostd's figures"); n != 1 {
		t.Errorf("logged the failure %d times, want once:\n%s", n, log.String())
	}
}
