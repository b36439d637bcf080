package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/pgsync"
)

var (
	syncPendingDesc = prometheus.NewDesc("collector_sync_pending_rows",
		"Rows waiting to be copied to SYNC_POSTGRES_URL, as of the last attempt.", nil, nil)
	syncLagDesc = prometheus.NewDesc("collector_sync_lag_seconds",
		"How long rows have waited to be copied to SYNC_POSTGRES_URL; 0 while the last attempt sent everything.", nil, nil)
	syncSentDesc = prometheus.NewDesc("collector_sync_sent_rows_total",
		"Rows copied to SYNC_POSTGRES_URL; a batch sent again after a failure counts again.", nil, nil)
	syncFailuresDesc = prometheus.NewDesc("collector_sync_failures_total",
		"Attempts to copy rows to SYNC_POSTGRES_URL that failed; the rows wait and are sent later.", nil, nil)
	syncLastSuccessDesc = prometheus.NewDesc("collector_sync_last_success_timestamp_seconds",
		"When an attempt last sent every row waiting (absent before the first).", nil, nil)
)

// syncDescs describe the series collectSync may emit.
var syncDescs = []*prometheus.Desc{syncPendingDesc, syncLagDesc, syncSentDesc, syncFailuresDesc, syncLastSuccessDesc}

// collectSync sends how the copy to the central PostgreSQL is doing.
func collectSync(ch chan<- prometheus.Metric, s pgsync.Stats) {
	ch <- gauge(syncPendingDesc, float64(s.Pending))
	ch <- gauge(syncLagDesc, s.Lag.Seconds())
	ch <- counter(syncSentDesc, float64(s.Sent))
	ch <- counter(syncFailuresDesc, float64(s.Failures))
	if !s.LastSuccess.IsZero() {
		ch <- gauge(syncLastSuccessDesc, float64(s.LastSuccess.UnixNano())/1e9)
	}
}
