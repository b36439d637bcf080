package dashboard_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// hostdSeeds are hostd's periods stored beside the seeded traffic, one
// near each seed of the last day, the last one ending after the newest
// seed: the span the panel compares reaches that far.
func hostdSeeds() []store.HostdFigures {
	paid := func(n uint64) *uint64 { return &n }
	period := func(ago time.Duration, rhpIn, rhpOut, syncIn, syncOut uint64, paidOut *uint64) store.HostdFigures {
		return store.HostdFigures{Start: now.Add(-ago).Truncate(alert.HostdPeriod), Periods: 1,
			RHP: store.HostdData{Ingress: rhpIn, Egress: rhpOut}, Syncer: &store.HostdData{Ingress: syncIn, Egress: syncOut},
			PaidEgress: paidOut, EgressPrice: 25, Version: "v2.10.2", QUIC: true}
	}
	return []store.HostdFigures{
		period(20*time.Hour, 4*mib, 45*mib, 0, 0, paid(30*mib)),
		period(5*time.Hour, 90*mib, 1400*mib, 4*mib, 1*mib, paid(1000*mib)),
		period(10*time.Minute, 50*mib, 1000*mib, 11*mib, 9*mib, paid(700*mib)),
	}
}

// divergence is the alert the daemon's detector has firing in the test.
var divergence = alert.Alert{
	ID: "0123456789abcdef", Status: alert.Firing, Kind: alert.HostdDivergence, Subject: alert.RHPSubject,
	StartedAt: now.Add(-25 * time.Minute),
	Divergence: &alert.DivergenceDetails{Reason: alert.HostdCountsNone, PeriodStart: now.Add(-15 * time.Minute),
		WireBytes: 12 * mib, Periods: 3},
}

// The hostd panel in headless Chromium: over the day shown, the wire
// bytes of the RHP classes and of consensus beside hostd's payload and
// their ratios, the egress hostd was paid for and the unpaid share of the
// RHP egress equal what the database holds, worked out here by hand; the
// divergence alert firing is listed; a client's view has no panel.
func TestHostdPanelInBrowser(t *testing.T) {
	st := seedStore(t)
	if err := st.WriteHostdPeriods(t.Context(), hostdSeeds()); err != nil {
		t.Fatal(err)
	}
	url := serveWith(t, st, func() []alert.Alert {
		quota := alert.Alert{ID: "fedcba9876543210", Status: alert.Firing, Kind: alert.QuotaThreshold, Subject: "up", StartedAt: now,
			Quota: &alert.QuotaDetails{Threshold: 0.8}}
		return []alert.Alert{divergence, quota}
	}, nil)
	ctx := newBrowser(t)
	failOnProblems(t, ctx)
	do(t, ctx, chromedp.Navigate(url))
	waitView(t, ctx, "span=1d&by=client")
	if hidden := evaluate[bool](t, ctx, `document.getElementById('hostd').hidden`); hidden {
		t.Fatal("the hostd panel is hidden while hostd's figures are stored")
	}

	// The day shown starts at the hour 24 hours ago; every seed of it and
	// every hostd period is within.
	since := now.Truncate(time.Hour).Add(-day)
	var wire traffic.Traffic = sumSeeds(since, every, byClient)["total"]
	var hostd store.HostdFigures
	var syncer store.HostdData
	var paid uint64
	for _, f := range hostdSeeds() {
		hostd.RHP.Ingress += f.RHP.Ingress
		hostd.RHP.Egress += f.RHP.Egress
		syncer.Ingress += f.Syncer.Ingress
		syncer.Egress += f.Syncer.Egress
		paid += *f.PaidEgress
	}
	in := func(classes ...traffic.Class) (down, up uint64) {
		for _, c := range classes {
			down += wire[c][traffic.Down].Bytes
			up += wire[c][traffic.Up].Bytes
		}
		return down, up
	}
	rhpIn, rhpOut := in(traffic.Siamux, traffic.QUIC)
	consIn, consOut := in(traffic.Consensus)
	rows := keyed(readRows(t, ctx, "#hostd-table"))
	if got := slices.Sorted(maps.Keys(rows)); !slices.Equal(got, []string{"consensus", "rhp"}) {
		t.Fatalf("hostd panel rows %v, want consensus and rhp", got)
	}
	for _, c := range []struct {
		key                              string
		wireIn, wireOut, hostIn, hostOut uint64
	}{
		{"rhp", rhpIn, rhpOut, hostd.RHP.Ingress, hostd.RHP.Egress},
		{"consensus", consIn, consOut, syncer.Ingress, syncer.Egress},
	} {
		f := rows[c.key].Fields
		checkBytes(t, c.key+" wire in", f["wire_ingress"], c.wireIn)
		checkBytes(t, c.key+" wire out", f["wire_egress"], c.wireOut)
		checkBytes(t, c.key+" hostd in", f["hostd_ingress"], c.hostIn)
		checkBytes(t, c.key+" hostd out", f["hostd_egress"], c.hostOut)
		ratio := float64(c.wireIn+c.wireOut) / float64(c.hostIn+c.hostOut)
		checkNumber(t, c.key+" ratio", f["ratio"], ratio, func(v float64) string { return fmt.Sprintf("%.3f", v) })
	}

	egress := readFigures(t, ctx, "#hostd-egress")
	checkBytes(t, "paid egress", egress["paid_egress"], paid)
	checkBytes(t, "RHP egress on the wire", egress["wire_egress"], rhpOut)
	unpaid := 1 - float64(paid)/float64(rhpOut)
	checkNumber(t, "unpaid share", egress["unpaid_egress_share"], unpaid, func(v float64) string { return fmt.Sprintf("%.1f %%", v*100) })

	listed := evaluate[[]string](t, ctx, `[...document.querySelectorAll('#hostd-alerts li[data-key]')].map((li) => li.dataset.key + ' ' + li.dataset.field + ' ' + li.textContent)`)
	if len(listed) != 1 || !strings.HasPrefix(listed[0], divergence.ID+" "+alert.HostdCountsNone+" hostd counts none since ") ||
		!strings.Contains(listed[0], "12.00 MiB on the wire, 0 B counted by hostd (hostd counted none)") {
		t.Errorf("hostd alerts listed %q, want the divergence alone, as it fires", listed)
	}
	saveScreenshot(t, ctx, "dashboard-hostd.png")

	do(t, ctx, chromedp.Navigate(url+"#span=1d&client=198.51.100.7"))
	waitView(t, ctx, "span=1d&by=client&client=198.51.100.7")
	if hidden := evaluate[bool](t, ctx, `document.getElementById('hostd').hidden`); !hidden {
		t.Error("the hostd panel is shown in a client's view; hostd knows no clients")
	}
}
