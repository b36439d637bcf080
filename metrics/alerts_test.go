package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/back2basic/collector/alert"
)

func TestAlertMetrics(t *testing.T) {
	m := New(Config{Alerts: Alerts{
		Active: func() []alert.Alert {
			return []alert.Alert{
				{Kind: alert.ConsensusSpike, Subject: alert.HostSubject},
				{Kind: alert.ConsensusSpike, Subject: "203.0.113.7"},
				{Kind: alert.HostdDivergence, Subject: alert.RHPSubject},
			}
		},
		Quotas: func() []alert.QuotaUse { return []alert.QuotaUse{{Direction: "up", Used: 800, Limit: 1000}} },
		Webhook: func() alert.WebhookStats {
			return alert.WebhookStats{Queued: 2, Refused: true, Sent: 5, Failures: 3, Dropped: 1}
		},
	}})
	want := `
# HELP collector_alerts_active Alerts firing, by kind: consensus_spike (consensus traffic far above its usual rate for the hour), quota (a share of a billing period's quota used up), quota_projection (a share the billing period is projected to use by its end), hostd_divergence (RHP bytes on the wire out of their usual ratio to hostd's count).
# TYPE collector_alerts_active gauge
collector_alerts_active{kind="consensus_spike"} 2
collector_alerts_active{kind="hostd_divergence"} 1
collector_alerts_active{kind="quota"} 0
collector_alerts_active{kind="quota_projection"} 0
# HELP collector_quota_used_ratio Share of the quota used in the billing period so far, by direction (1 is all of it).
# TYPE collector_quota_used_ratio gauge
collector_quota_used_ratio{direction="up"} 0.8
# HELP collector_alert_webhook_failures_total Failed attempts to deliver an alert to ALERT_WEBHOOK_URL; each is retried.
# TYPE collector_alert_webhook_failures_total counter
collector_alert_webhook_failures_total 3
# HELP collector_alert_webhook_refused 1 while ALERT_WEBHOOK_URL refuses alerts (401, 403, 404 or another 4xx: a token or URL to fix), else 0; they are retried.
# TYPE collector_alert_webhook_refused gauge
collector_alert_webhook_refused 1
# HELP collector_alert_webhook_dropped_total Alerts lost: pushed out of a full queue, the oldest first, while ALERT_WEBHOOK_URL took none.
# TYPE collector_alert_webhook_dropped_total counter
collector_alert_webhook_dropped_total 1
`
	err := testutil.CollectAndCompare(m, strings.NewReader(want), "collector_alerts_active", "collector_quota_used_ratio",
		"collector_alert_webhook_failures_total", "collector_alert_webhook_refused", "collector_alert_webhook_dropped_total")
	if err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(New(Config{}), "collector_alerts_active", "collector_quota_bytes"); n != 0 {
		t.Errorf("%d alert series without alert sources, want none", n)
	}
}

// The alert and webhook series pass promtool check metrics, as CI checks
// them.
func TestPromtoolCheckAlertMetrics(t *testing.T) {
	promtool(t, scrape(t, New(Config{Alerts: Alerts{
		Active:  func() []alert.Alert { return nil },
		Quotas:  func() []alert.QuotaUse { return []alert.QuotaUse{{Direction: "up", Used: 800, Limit: 1000}} },
		Webhook: func() alert.WebhookStats { return alert.WebhookStats{Refused: true} },
	}})), "check", "metrics")
}
