package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/traffic"
)

// billingTimeout bounds reading the billing period within a scrape, which
// Prometheus gives 10 seconds by default.
const billingTimeout = 5 * time.Second

// Billed is what the database holds of a billing period so far.
type Billed struct {
	Down, Up uint64
	// Egress is what its egress costs and its projection to its end;
	// nil leaves their series out.
	Egress *report.Egress
}

var (
	billingDesc = prometheus.NewDesc("collector_billing_period_bytes",
		"Bytes the database holds for the billing period so far (it starts on BILLING_DAY), by direction.",
		[]string{labelDirection}, nil)
	projectedDesc = prometheus.NewDesc("collector_billing_period_projected_bytes",
		"Bytes the billing period will have moved by its end at its rate so far, by direction.",
		[]string{labelDirection}, nil)
	billableDesc = prometheus.NewDesc("collector_egress_billable_bytes",
		"The billing period's egress (every class's up bytes) so far beyond the provider's allowance, EGRESS_FREE_BYTES.", nil, nil)
	costDesc = prometheus.NewDesc("collector_egress_cost",
		"What the billing period's egress so far costs at EGRESS_COST_PER_TB, in the operator's currency.", nil, nil)
	projectedCostDesc = prometheus.NewDesc("collector_egress_projected_cost",
		"What the billing period's egress will cost by its end at its rate so far, in the operator's currency.", nil, nil)
	valueDesc = prometheus.NewDesc("collector_egress_value_siacoins",
		"The billing period's egress so far at hostd's egress price, in siacoins; absent while the price is unknown.", nil, nil)
	marginDesc = prometheus.NewDesc("collector_egress_margin",
		"The egress value at hostd's price in the cost's currency (SIACOIN_PRICE) less its cost; absent while either price is unknown.", nil, nil)
	percentileDesc = prometheus.NewDesc("collector_egress_p95_bytes_per_second",
		"The billing period's 95th-percentile egress rate over its 5-minute slots so far, as providers bill it (times 8 for bits a second).", nil, nil)
)

// billingCache is the billing period as read for the flush it was read
// after: the database changes only when a flush stores a period.
type billingCache struct {
	mu      sync.Mutex
	valid   bool
	flushes uint64 // Metrics.flushes when it was read
	billed  Billed
	errors  uint64
	failing outage.Outage
}

// collectBilling sends the billing period so far, read again when a flush
// came since, and the count of failures to read it. A failure leaves the
// period out of this scrape.
func (m *Metrics) collectBilling(ch chan<- prometheus.Metric) {
	if m.cfg.Billed == nil || m.cfg.Billing.IsZero() {
		return
	}
	m.mu.Lock()
	flushes := m.flushes
	m.mu.Unlock()

	b := &m.billing
	b.mu.Lock()
	if !b.valid || b.flushes != flushes {
		b.read(m.cfg, flushes)
	}
	valid, billed, errs := b.valid, b.billed, b.errors
	b.mu.Unlock()

	ch <- counter(errorsDesc, float64(errs), kindBilling)
	if valid {
		ch <- gauge(billingDesc, float64(billed.Down), traffic.Down.String())
		ch <- gauge(billingDesc, float64(billed.Up), traffic.Up.String())
		if billed.Egress != nil {
			collectEgress(ch, billed.Egress)
		}
	}
}

// collectEgress sends what the billing period's egress costs, the
// figures not known left out.
func collectEgress(ch chan<- prometheus.Metric, e *report.Egress) {
	ch <- gauge(projectedDesc, float64(e.ProjectedDown), traffic.Down.String())
	ch <- gauge(projectedDesc, float64(e.ProjectedUp), traffic.Up.String())
	ch <- gauge(billableDesc, float64(e.Bill.BillableBytes))
	ch <- gauge(costDesc, e.Bill.Cost)
	ch <- gauge(projectedCostDesc, e.ProjectedCost)
	ch <- gauge(percentileDesc, e.Percentile95/8)
	if e.Worth.ValueSC.Known {
		ch <- gauge(valueDesc, e.Worth.ValueSC.Amount)
	}
	if e.Worth.Margin.Known {
		ch <- gauge(marginDesc, e.Worth.Margin.Amount)
	}
}

// read asks cfg.Billed for the billing period holding now, after
// flushes periods. b.mu must be held.
func (b *billingCache) read(cfg Config, flushes uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), billingTimeout)
	defer cancel()
	now := time.Now()
	billed, err := cfg.Billed(ctx, cfg.Billing.Period(now))
	b.failing.Update(ctx, cfg.Log, now, err)
	if err != nil {
		b.valid = false
		b.errors++
		return
	}
	b.valid, b.flushes, b.billed = true, flushes, billed
}
