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
			}
		},
		Quotas:  func() []alert.QuotaUse { return []alert.QuotaUse{{Direction: "up", Used: 800, Limit: 1000}} },
		Webhook: func() alert.WebhookStats { return alert.WebhookStats{Queued: 2, Sent: 5, Failures: 3, Dropped: 1} },
	}})
	want := `
# HELP collector_alerts_active Alerts firing, by kind: consensus_spike (consensus traffic far above its usual rate for the hour), quota (a share of a billing period's quota used up).
# TYPE collector_alerts_active gauge
collector_alerts_active{kind="consensus_spike"} 2
collector_alerts_active{kind="quota"} 0
# HELP collector_quota_used_ratio Share of the quota used in the billing period so far, by direction (1 is all of it).
# TYPE collector_quota_used_ratio gauge
collector_quota_used_ratio{direction="up"} 0.8
# HELP collector_alert_webhook_failures_total Failed attempts to deliver an alert to ALERT_WEBHOOK_URL; each is retried.
# TYPE collector_alert_webhook_failures_total counter
collector_alert_webhook_failures_total 3
`
	err := testutil.CollectAndCompare(m, strings.NewReader(want),
		"collector_alerts_active", "collector_quota_used_ratio", "collector_alert_webhook_failures_total")
	if err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(New(Config{}), "collector_alerts_active", "collector_quota_bytes"); n != 0 {
		t.Errorf("%d alert series without alert sources, want none", n)
	}
}
