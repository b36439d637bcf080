package hostd_test

import (
	"math/big"
	"testing"
	"time"

	"github.com/back2basic/collector/hostd"
)

// totals builds hostd's running totals at the end of the period at start.
func totals(start time.Time, rhpIn, rhpOut uint64, syncer *hostd.Data, earned, potential, price int64) hostd.Metrics {
	var m hostd.Metrics
	m.Timestamp = start
	m.Data.RHP = hostd.Data{Ingress: rhpIn, Egress: rhpOut}
	m.Data.Syncer = syncer
	m.Revenue.Earned.Egress.SetInt64(earned)
	m.Revenue.Potential.Egress.SetInt64(potential)
	m.Pricing.EgressPrice.SetInt64(price)
	return m
}

func TestUsagesAreDifferencesAndSurviveResets(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * hostd.Period) }
	in := []hostd.Metrics{
		totals(at(0), 100, 1000, &hostd.Data{Ingress: 5, Egress: 6}, 0, 500, 10),
		totals(at(1), 150, 1600, &hostd.Data{Ingress: 7, Egress: 9}, 0, 800, 10), // 300 H at 10 H/B: 30 bytes paid
		// A contract succeeds (potential to earned) and another fails
		// (200 H lost): the sum falls, the period is paid nothing.
		totals(at(2), 160, 1700, &hostd.Data{Ingress: 8, Egress: 9}, 700, -100+100, 10),
		// hostd starts over on a new database: left out, not negative.
		totals(at(3), 20, 30, &hostd.Data{Ingress: 1, Egress: 1}, 0, 0, 10),
		totals(at(4), 25, 45, &hostd.Data{Ingress: 2, Egress: 3}, 0, 50, 0), // price 0: paid unknown
		// A gap in the answer: left out.
		totals(at(6), 30, 50, &hostd.Data{Ingress: 2, Egress: 3}, 0, 50, 5),
		// Downgraded to a hostd without syncer figures.
		totals(at(7), 31, 52, nil, 0, 60, 5),
	}
	got, skipped := hostd.Usages(in)
	if skipped != 2 {
		t.Errorf("skipped %d periods, want 2 (the reset and the gap)", skipped)
	}
	type want struct {
		start      time.Time
		rhp        hostd.Data
		syncer     *hostd.Data
		paid       uint64
		paidKnown  bool
		revenueStr string
	}
	wants := []want{
		{at(1), hostd.Data{Ingress: 50, Egress: 600}, &hostd.Data{Ingress: 2, Egress: 3}, 30, true, "300"},
		{at(2), hostd.Data{Ingress: 10, Egress: 100}, &hostd.Data{Ingress: 1, Egress: 0}, 0, true, "0"},
		{at(4), hostd.Data{Ingress: 5, Egress: 15}, &hostd.Data{Ingress: 1, Egress: 2}, 0, false, "50"},
		{at(7), hostd.Data{Ingress: 1, Egress: 2}, nil, 2, true, "10"},
	}
	if len(got) != len(wants) {
		t.Fatalf("%d usages, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		u := got[i]
		paid, ok := u.PaidEgress()
		if !u.Start.Equal(w.start) || u.RHP != w.rhp || (u.Syncer == nil) != (w.syncer == nil) ||
			(u.Syncer != nil && *u.Syncer != *w.syncer) || paid != w.paid || ok != w.paidKnown || u.EgressRevenue.String() != w.revenueStr {
			t.Errorf("usage %d: %v rhp %+v syncer %v paid %d/%v revenue %s; want %+v", i, u.Start, u.RHP, u.Syncer, paid, ok, u.EgressRevenue, w)
		}
	}
}

// Paid bytes come from amounts far past 64 bits, exactly.
func TestPaidEgressIsExact(t *testing.T) {
	revenue, _ := new(big.Int).SetString("123456789012345678901234567", 10) // ~123 SC
	price := new(big.Int).Exp(big.NewInt(10), big.NewInt(12), nil)          // 1 SC/TB
	u := hostd.Usage{EgressRevenue: revenue, EgressPrice: price}
	if paid, ok := u.PaidEgress(); !ok || paid != 123456789012345 {
		t.Errorf("paid = %d, %v; want 123456789012345 (revenue / price, rounded down)", paid, ok)
	}
	if got := hostd.SCPerTB(price); got != 1 {
		t.Errorf("10^12 H/B = %v SC/TB, want 1", got)
	}
	u.EgressPrice = big.NewInt(1)
	if _, ok := u.PaidEgress(); ok {
		t.Error("paid bytes past int64 were given")
	}
}
