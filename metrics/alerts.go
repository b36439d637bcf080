package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/alert"
)

// Alerts is what the alerts tell the metrics: those firing, how much of
// each quota is used, and how the webhook delivers them.
type Alerts struct {
	// Active reads the alerts firing: the Detector's Active.
	Active func() []alert.Alert
	// Quotas reads the share of each quota used: the Detector's QuotaUse.
	Quotas func() []alert.QuotaUse
	// Webhook reads how the webhook is doing; nil without one.
	Webhook func() alert.WebhookStats
}

var (
	alertsActiveDesc = prometheus.NewDesc("collector_alerts_active",
		"Alerts firing, by kind: consensus_spike (consensus traffic far above its usual rate for the hour), quota (a share of a billing period's quota used up), quota_projection (a share the billing period is projected to use by its end), hostd_divergence (RHP bytes on the wire out of their usual ratio to hostd's count).",
		[]string{labelKind}, nil)
	quotaBytesDesc = prometheus.NewDesc("collector_quota_bytes",
		"The quota of the billing period, by direction (up, down, total), as set in QUOTA_*_BYTES.",
		[]string{labelDirection}, nil)
	quotaUsedBytesDesc = prometheus.NewDesc("collector_quota_used_bytes",
		"Bytes of the quota used in the billing period so far, by direction.",
		[]string{labelDirection}, nil)
	quotaUsedRatioDesc = prometheus.NewDesc("collector_quota_used_ratio",
		"Share of the quota used in the billing period so far, by direction (1 is all of it).",
		[]string{labelDirection}, nil)
	quotaProjectedBytesDesc = prometheus.NewDesc("collector_quota_projected_bytes",
		"Bytes of the quota the billing period will have used by its end at its rate so far, by direction.",
		[]string{labelDirection}, nil)
	quotaProjectedRatioDesc = prometheus.NewDesc("collector_quota_projected_ratio",
		"Share of the quota the billing period will have used by its end at its rate so far, by direction (1 is all of it).",
		[]string{labelDirection}, nil)
	webhookQueuedDesc = prometheus.NewDesc("collector_alert_webhook_queued",
		"Alerts waiting to be delivered to ALERT_WEBHOOK_URL.", nil, nil)
	webhookSentDesc = prometheus.NewDesc("collector_alert_webhook_sent_total",
		"Alerts delivered to ALERT_WEBHOOK_URL.", nil, nil)
	webhookFailuresDesc = prometheus.NewDesc("collector_alert_webhook_failures_total",
		"Failed attempts to deliver an alert to ALERT_WEBHOOK_URL; each is retried.", nil, nil)
	webhookDroppedDesc = prometheus.NewDesc("collector_alert_webhook_dropped_total",
		"Alerts lost: pushed out of a full queue, the oldest first, while ALERT_WEBHOOK_URL took none.", nil, nil)
	webhookRefusedDesc = prometheus.NewDesc("collector_alert_webhook_refused",
		"1 while ALERT_WEBHOOK_URL refuses alerts (401, 403, 404 or another 4xx: a token or URL to fix), else 0; they are retried.", nil, nil)
)

// alertDescs describe the series collectAlerts may emit.
var alertDescs = []*prometheus.Desc{
	alertsActiveDesc, quotaBytesDesc, quotaUsedBytesDesc, quotaUsedRatioDesc, quotaProjectedBytesDesc, quotaProjectedRatioDesc,
	webhookQueuedDesc, webhookSentDesc, webhookFailuresDesc, webhookDroppedDesc, webhookRefusedDesc,
}

// collectAlerts sends the alerts firing by kind, every kind present even
// at 0 so that a rule can tell none from no data, the quotas and the
// webhook's counts.
func collectAlerts(ch chan<- prometheus.Metric, a Alerts) {
	if a.Active != nil {
		firing := map[alert.Kind]int{alert.ConsensusSpike: 0, alert.QuotaThreshold: 0, alert.QuotaProjection: 0, alert.HostdDivergence: 0}
		for _, al := range a.Active() {
			firing[al.Kind]++
		}
		for kind, n := range firing {
			ch <- gauge(alertsActiveDesc, float64(n), string(kind))
		}
	}
	if a.Quotas != nil {
		for _, q := range a.Quotas() {
			ch <- gauge(quotaBytesDesc, float64(q.Limit), q.Direction)
			ch <- gauge(quotaUsedBytesDesc, float64(q.Used), q.Direction)
			ch <- gauge(quotaUsedRatioDesc, q.Share(), q.Direction)
			ch <- gauge(quotaProjectedBytesDesc, float64(q.Projected), q.Direction)
			ch <- gauge(quotaProjectedRatioDesc, q.ProjectedShare(), q.Direction)
		}
	}
	if a.Webhook != nil {
		s := a.Webhook()
		ch <- gauge(webhookQueuedDesc, float64(s.Queued))
		ch <- counter(webhookSentDesc, float64(s.Sent))
		ch <- counter(webhookFailuresDesc, float64(s.Failures))
		ch <- counter(webhookDroppedDesc, float64(s.Dropped))
		refused := 0.0
		if s.Refused {
			refused = 1
		}
		ch <- gauge(webhookRefusedDesc, refused)
	}
}
