package metrics

import (
	"context"
	"database/sql"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/internal/testkit/storetest"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// The egress series equal what SQL of the test's own makes of a database
// the daemon's way of storing filled: a busy day of a billing period.
func TestEgressSeriesByHand(t *testing.T) {
	now := storetest.Now
	cycle, err := billing.NewCycle(1, now.Location())
	if err != nil {
		t.Fatal(err)
	}
	period := cycle.Period(now)
	var periods []traffic.Period
	for i := range 200 {
		var tr traffic.Traffic
		tr[traffic.Siamux][traffic.Up].Bytes = uint64(i*7919%1000+1) << 20
		tr[traffic.Consensus][traffic.Down].Bytes = 1 << 20
		at := time.Date(2026, 3, 3, 0, 0, 0, 0, now.Location()).Add(time.Duration(i) * 5 * time.Minute)
		periods = append(periods, storetest.Minute(at, traffic.Sample{Client: traffic.ClientOf(netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 7)})), Traffic: tr}))
	}
	path := storetest.Fill(t, periods, now)
	st, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pricing := cost.Pricing{PerTB: 3, FreeBytes: 5e9, SiacoinPrice: 0.004}
	m := New(Config{Billing: cycle, Log: discard, Billed: func(ctx context.Context, _ billing.Period) (Billed, error) {
		// As the daemon reads it, for the fixture's period.
		res, err := report.Build(ctx, st, report.Request{Span: report.BillingSpan(period), By: report.ByClass, Now: now,
			Egress: &report.EgressAsk{Pricing: pricing}})
		if err != nil {
			return Billed{}, err
		}
		return Billed{Egress: res.Egress}, nil
	}})
	got := gather(t, m)

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var up uint64
	var since int64
	if err := db.QueryRow("SELECT SUM(consensus_up + siamux_up + quic_up) FROM traffic WHERE timestamp >= ?", period.Start.Unix()).Scan(&up); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT max(?, timestamp) FROM egress_since", period.Start.Unix()).Scan(&since); err != nil {
		t.Fatal(err)
	}
	slots := make([]uint64, (now.Unix()-since)/300)
	rows, err := db.Query("SELECT timestamp, bytes FROM egress_5m WHERE timestamp >= ? AND timestamp < ?", since, since+int64(len(slots))*300)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var at int64
		var b uint64
		if err := rows.Scan(&at, &b); err != nil {
			t.Fatal(err)
		}
		slots[(at-since)/300] = b
	}
	rows.Close()
	slices.Sort(slots)
	slices.Reverse(slots)

	projectedUp := math.Round(float64(up) * period.End.Sub(period.Start).Seconds() / now.Sub(period.Start).Seconds())
	for name, want := range map[string]float64{
		"collector_egress_billable_bytes":          float64(up) - 5e9,
		"collector_egress_cost":                    (float64(up) - 5e9) / 1e12 * 3,
		"collector_egress_projected_cost":          (projectedUp - 5e9) / 1e12 * 3,
		"collector_egress_p95_bytes_per_second":    float64(slots[len(slots)*5/100]) / 300,
		"collector_billing_period_projected_bytes": projectedUp,
	} {
		v, ok := got[name][""]
		if name == "collector_billing_period_projected_bytes" {
			v, ok = got[name]["direction=up"]
		}
		if !ok || math.Abs(v-want) > 1e-9*math.Max(1, want) {
			t.Errorf("%s = %v (%v), by hand %v", name, v, ok, want)
		}
	}
	if slots[len(slots)*5/100] == 0 {
		t.Error("the 95th percentile by hand is 0; the test lost its point")
	}
	for _, name := range []string{"collector_egress_value_siacoins", "collector_egress_margin"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s without hostd's price: %v, want no series", name, got[name])
		}
	}
}
