package dashboard_test

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// pricing is the provider's: 4 a TB beyond 2 GB a period, a siacoin
// worth 0.003.
var pricing = cost.Pricing{PerTB: 4, FreeBytes: 2e9, SiacoinPrice: 0.003}

// hostdPrice is hostd's egress price, in SC per TB, at any time.
type hostdPrice float64

func (p hostdPrice) EgressPrice(time.Time) (float64, bool) { return float64(p), true }

const scPerTB = 250

// billingPeriod is the billing period the dashboard shows: from the 1st.
func billingPeriod(t *testing.T) billing.Period {
	t.Helper()
	cycle, err := billing.NewCycle(1, now.Location())
	if err != nil {
		t.Fatal(err)
	}
	return cycle.Period(now)
}

// upQuota is twice what the seeds send in the billing period: half used,
// and projected, on March 18 of 31 days, past 80%.
func upQuota(t *testing.T) uint64 {
	t.Helper()
	return 2 * direction(sumSeeds(billingPeriod(t).Start, every, byClient)["total"], traffic.Up)
}

// newAlerts is the alerts of a daemon on st at now, with upQuota and
// QUOTA_ON_PROJECTION: loaded, they fire what the stored period crossed.
func newAlerts(t *testing.T, st *store.Store) *alert.Detector {
	t.Helper()
	d, err := alert.New(alert.Config{
		Store: st, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
		Spike: alert.Spike{Off: true},
		Quota: alert.Quota{Up: upQuota(t), Billing: billingPeriod(t).Cycle(), OnProjection: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkNumber checks that f holds want, raw within rounding, and shows it
// as format writes it.
func checkNumber(t *testing.T, where string, f figure, want float64, format func(float64) string) {
	t.Helper()
	got, err := strconv.ParseFloat(f.Value, 64)
	if err != nil || math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) || f.Text != format(want) {
		t.Errorf("%s: shows %q (value %q), want %q (%v)", where, f.Text, f.Value, format(want), want)
	}
}

// money is the page's amount: two decimals, and a loss that rounds to
// nothing written 0.00 (the seeds' margins are such losses).
func money(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if s == "-0.00" {
		return "0.00"
	}
	return s
}

// projected is what used becomes by the end of the billing period at its
// rate so far.
func projected(t *testing.T, used uint64) uint64 {
	p := billingPeriod(t)
	return uint64(math.Round(float64(used) * p.End.Sub(p.Start).Seconds() / now.Sub(p.Start).Seconds()))
}

// checkEgress checks the egress card against the seeds of the billing
// period: what the host sent, beyond the allowance, its cost, value and
// margin, the 95th percentile of its 5-minute slots and the projection.
func checkEgress(t *testing.T, ctx context.Context) {
	t.Helper()
	p := billingPeriod(t)
	total := sumSeeds(p.Start, every, byClient)["total"]
	up, down := direction(total, traffic.Up), direction(total, traffic.Down)
	billable := up - pricing.FreeBytes
	costOf := float64(billable) / 1e12 * pricing.PerTB
	value := float64(up) / 1e12 * scPerTB
	card := readFigures(t, ctx, "#egress")
	checkBytes(t, "egress sent", card["bytes"], up)
	checkBytes(t, "egress beyond the allowance", card["billable_bytes"], billable)
	checkNumber(t, "egress cost", card["cost"], costOf, money)
	checkNumber(t, "egress value", card["value_sc"], value, func(v float64) string { return money(v) + " SC" })
	checkNumber(t, "egress margin", card["margin"], value*pricing.SiacoinPrice-costOf, money)
	checkBytes(t, "projected up", card["projected_up_bytes"], projected(t, up))
	checkBytes(t, "projected total", card["projected_bytes"], projected(t, up+down))
	checkNumber(t, "projected cost", card["projected_cost"], float64(projected(t, up)-pricing.FreeBytes)/1e12*pricing.PerTB, money)

	// The slots of the period, from its start (egress_5m covers it: it is
	// kept as long as hourly rows, 20 days here) to now.
	slots := make([]uint64, int(now.Sub(p.Start)/(5*time.Minute)))
	for _, s := range seeds() {
		if at := now.Add(-s.ago).Truncate(time.Minute); !at.Before(p.Start) {
			slots[int(at.Sub(p.Start)/(5*time.Minute))] += direction(s.traffic, traffic.Up)
		}
	}
	slices.Sort(slots)
	slices.Reverse(slots)
	p95 := float64(slots[len(slots)*5/100]) * 8 / 300
	checkNumber(t, "95th percentile", card["percentile95_bits_per_second"], p95, func(v float64) string {
		return strconv.FormatFloat(v, 'f', 0, 64) + " bit/s"
	})
}

// checkCosts checks the cost per client table: the 20 busiest clients of
// the billing period, the rest and the total, each with its egress, its
// share of the cost, its value and its margin.
func checkCosts(t *testing.T, ctx context.Context) {
	t.Helper()
	p := billingPeriod(t)
	all := sumSeeds(p.Start, every, byClient)
	host := direction(all["total"], traffic.Up)
	hostCost := float64(host-pricing.FreeBytes) / 1e12 * pricing.PerTB
	rows := readRows(t, ctx, "#cost-table")
	if len(rows) < 3 {
		t.Fatalf("%d rows of costs", len(rows))
	}
	var rest uint64 = host
	for _, r := range rows {
		var up uint64
		switch r.Key {
		case "rest":
			up = rest
		case "total":
			up = host
		default:
			tr, ok := all[r.Key]
			if !ok {
				t.Errorf("cost of %s, which sent nothing this period", r.Key)
				continue
			}
			up = direction(tr, traffic.Up)
			rest -= up
		}
		c := hostCost * float64(up) / float64(host)
		v := float64(up) / 1e12 * scPerTB
		checkBytes(t, r.Key+" egress", r.Fields["egress_bytes"], up)
		checkNumber(t, r.Key+" cost", r.Fields["cost"], c, money)
		checkNumber(t, r.Key+" value", r.Fields["value_sc"], v, money)
		checkNumber(t, r.Key+" margin", r.Fields["margin"], v*pricing.SiacoinPrice-c, money)
	}
}

// checkQuotas checks the quota's share and projection, and that the
// alert its projection fired is listed.
func checkQuotas(t *testing.T, ctx context.Context) {
	t.Helper()
	quota := upQuota(t)
	used := quota / 2
	rows := keyed(readRows(t, ctx, "#quotas"))
	up, ok := rows["up"]
	if len(rows) != 1 || !ok {
		t.Fatalf("quota rows %v, want up's", rows)
	}
	checkBytes(t, "quota used", up.Fields["used_bytes"], used)
	checkBytes(t, "quota", up.Fields["quota_bytes"], quota)
	checkBytes(t, "quota projected", up.Fields["projected_bytes"], projected(t, used))
	share := func(v float64) string { return strconv.FormatFloat(v*100, 'f', 0, 64) + "%" }
	checkNumber(t, "quota share", up.Fields["share"], 0.5, share)
	checkNumber(t, "quota projected share", up.Fields["projected_share"], math.Round(float64(projected(t, used))/float64(quota)*1e4)/1e4, share)
	kinds := evaluate[[]string](t, ctx, `[...document.querySelectorAll('#alerts li[data-kind]')].map((li) => li.dataset.kind + ' ' + li.textContent)`)
	if want := "quota_projection quota projection up since"; len(kinds) != 1 || len(kinds[0]) < len(want) || kinds[0][:len(want)] != want {
		t.Errorf("alerts shown %q, want the up quota's projection alone", kinds)
	}
}

// egressAsk is what the test server asks of billing reports.
var egressAsk = &report.EgressAsk{Pricing: pricing, Prices: hostdPrice(scPerTB)}
