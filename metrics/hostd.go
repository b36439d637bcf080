package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// The classes of the hostd series: the wire's, and hostd's own names for
// the same traffic.
const (
	classRHP       = "rhp"       // siamux + quic on the wire; hostd's data.rhp
	classConsensus = "consensus" // on the wire
	classSyncer    = "syncer"    // hostd's data.syncer
)

var (
	hostdWireDesc = prometheus.NewDesc("collector_hostd_billing_period_wire_bytes",
		"Bytes on the wire of all clients in the billing period so far, up to the end of hostd's last stored period, by class (rhp: siamux + quic; consensus) and direction.",
		[]string{labelClass, labelDirection}, nil)
	hostdPayloadDesc = prometheus.NewDesc("collector_hostd_billing_period_payload_bytes",
		"Payload bytes hostd counted in the same span, by class (rhp; syncer, from hostd 2.6.0 on) and direction (up: hostd's egress).",
		[]string{labelClass, labelDirection}, nil)
	hostdRatioDesc = prometheus.NewDesc("collector_hostd_wire_payload_ratio",
		"Wire bytes over hostd's payload bytes in the same span, both directions: rhp against hostd's rhp, consensus against hostd's syncer.",
		[]string{labelClass}, nil)
	hostdPaidDesc = prometheus.NewDesc("collector_hostd_billing_period_paid_egress_bytes",
		"Egress bytes hostd was paid for in the same span: its earned plus potential egress revenue over its egress price, per 5-minute period.",
		nil, nil)
	hostdUnpaidDesc = prometheus.NewDesc("collector_hostd_unpaid_egress_ratio",
		"Share of rhp egress on the wire nobody paid for in the same span: 1 - paid / wire, 0 when hostd was paid for more than the wire carried.",
		nil, nil)
	hostdPeriodsDesc = prometheus.NewDesc("collector_hostd_billing_period_periods",
		"hostd's 5-minute periods stored for the same span; fewer than the span holds where hostd was not read.",
		nil, nil)
	hostdPriceDesc = prometheus.NewDesc("collector_hostd_egress_price_siacoin_per_terabyte",
		"hostd's egress price at the end of its last stored period, in SC per TB.",
		nil, nil)
)

var hostdDescs = []*prometheus.Desc{hostdWireDesc, hostdPayloadDesc, hostdRatioDesc, hostdPaidDesc, hostdUnpaidDesc, hostdPeriodsDesc, hostdPriceDesc}

// hostdTimeout bounds reading hostd's figures within a scrape.
const hostdTimeout = 5 * time.Second

// hostdReader reads the billing period's comparison for a scrape; a
// failure leaves the series out of that scrape and is logged once per
// outage.
type hostdReader struct {
	failing outage.Outage
}

// collectHostd sends the billing period so far beside hostd's figures,
// when cfg.Hostd is set and hostd's figures cover part of it.
func (m *Metrics) collectHostd(ch chan<- prometheus.Metric) {
	if m.cfg.Hostd == nil || m.cfg.Billing.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostdTimeout)
	defer cancel()
	now := time.Now()
	f, ok, err := m.cfg.Hostd(ctx, m.cfg.Billing.Period(now))
	m.hostd.failing.Update(ctx, m.cfg.Log, now, err)
	if err != nil || !ok {
		return
	}
	for _, d := range []traffic.Direction{traffic.Up, traffic.Down} {
		pick := func(b store.HostdData) float64 {
			if d == traffic.Up {
				return float64(b.Egress)
			}
			return float64(b.Ingress)
		}
		ch <- gauge(hostdWireDesc, pick(f.WireRHP), classRHP, d.String())
		ch <- gauge(hostdWireDesc, pick(f.WireConsensus), classConsensus, d.String())
		ch <- gauge(hostdPayloadDesc, pick(f.Hostd.RHP), classRHP, d.String())
		if f.Hostd.Syncer != nil {
			ch <- gauge(hostdPayloadDesc, pick(*f.Hostd.Syncer), classSyncer, d.String())
		}
	}
	if f.RatioRHP != nil {
		ch <- gauge(hostdRatioDesc, *f.RatioRHP, classRHP)
	}
	if f.RatioConsensus != nil {
		ch <- gauge(hostdRatioDesc, *f.RatioConsensus, classConsensus)
	}
	if f.Hostd.PaidEgress != nil {
		ch <- gauge(hostdPaidDesc, float64(*f.Hostd.PaidEgress))
	}
	if f.UnpaidEgressShare != nil {
		ch <- gauge(hostdUnpaidDesc, *f.UnpaidEgressShare)
	}
	ch <- gauge(hostdPeriodsDesc, float64(f.Hostd.Periods))
	ch <- gauge(hostdPriceDesc, f.Hostd.EgressPrice)
}

// HostdOf returns the Config.Hostd of a beside.Source: the billing
// period's comparison, up to now.
func HostdOf(src beside.Source) func(ctx context.Context, p billing.Period) (beside.Figures, bool, error) {
	return func(ctx context.Context, p billing.Period) (beside.Figures, bool, error) {
		return beside.Compare(ctx, src, p.Start, p.End)
	}
}
