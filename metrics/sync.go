package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/internal/syncloop"
)

// syncTarget labels each series with the target of the copy: postgres
// (SYNC_POSTGRES_URL) or http (SYNC_HTTP_URL).
var syncTarget = []string{"target"}

var (
	syncPendingDesc = prometheus.NewDesc("collector_sync_pending_rows",
		"Rows waiting to be copied to the sync target, as of the last attempt.", syncTarget, nil)
	syncLagDesc = prometheus.NewDesc("collector_sync_lag_seconds",
		"How long rows have waited to be copied to the sync target; 0 while the last attempt sent everything.", syncTarget, nil)
	syncSentDesc = prometheus.NewDesc("collector_sync_sent_rows_total",
		"Rows copied to the sync target; a batch sent again after a failure counts again.", syncTarget, nil)
	syncFailuresDesc = prometheus.NewDesc("collector_sync_failures_total",
		"Attempts to copy rows to the sync target that failed; the rows wait and are sent later.", syncTarget, nil)
	syncLastSuccessDesc = prometheus.NewDesc("collector_sync_last_success_timestamp_seconds",
		"When an attempt last sent every row waiting (absent before the first).", syncTarget, nil)
)

// syncDescs describe the series collectSync may emit.
var syncDescs = []*prometheus.Desc{syncPendingDesc, syncLagDesc, syncSentDesc, syncFailuresDesc, syncLastSuccessDesc}

// collectSync sends how the copy to one sync target is doing.
func collectSync(ch chan<- prometheus.Metric, s syncloop.Stats) {
	ch <- gauge(syncPendingDesc, float64(s.Pending), s.Target)
	ch <- gauge(syncLagDesc, s.Lag.Seconds(), s.Target)
	ch <- counter(syncSentDesc, float64(s.Sent), s.Target)
	ch <- counter(syncFailuresDesc, float64(s.Failures), s.Target)
	if !s.LastSuccess.IsZero() {
		ch <- gauge(syncLastSuccessDesc, float64(s.LastSuccess.UnixNano())/1e9, s.Target)
	}
}
