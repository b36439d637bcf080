package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/traffic"
)

// billingTimeout bounds reading the billing period within a scrape, which
// Prometheus gives 10 seconds by default.
const billingTimeout = 5 * time.Second

var billingDesc = prometheus.NewDesc("collector_billing_period_bytes",
	"Bytes the database holds for the billing period so far (it starts on BILLING_DAY), by direction.",
	[]string{labelDirection}, nil)

// billingCache is the billing period as read for the flush it was read
// after: the database changes only when a flush stores a period.
type billingCache struct {
	mu       sync.Mutex
	valid    bool
	flushes  uint64 // Metrics.flushes when it was read
	down, up uint64
	errors   uint64
	failing  outage.Outage
}

// collectBilling sends the billing period so far, read again when a flush
// came since, and the count of failures to read it. A failure leaves the
// period out of this scrape.
func (m *Metrics) collectBilling(ch chan<- prometheus.Metric) {
	if m.cfg.BillingBytes == nil || m.cfg.Billing.IsZero() {
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
	valid, down, up, errs := b.valid, b.down, b.up, b.errors
	b.mu.Unlock()

	ch <- counter(errorsDesc, float64(errs), kindBilling)
	if valid {
		ch <- gauge(billingDesc, float64(down), traffic.Down.String())
		ch <- gauge(billingDesc, float64(up), traffic.Up.String())
	}
}

// read asks cfg.BillingBytes for the billing period holding now, after
// flushes periods. b.mu must be held.
func (b *billingCache) read(cfg Config, flushes uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), billingTimeout)
	defer cancel()
	now := time.Now()
	down, up, err := cfg.BillingBytes(ctx, cfg.Billing.Period(now))
	b.failing.Update(ctx, cfg.Log, now, err)
	if err != nil {
		b.valid = false
		b.errors++
		return
	}
	b.valid, b.flushes, b.down, b.up = true, flushes, down, up
}
