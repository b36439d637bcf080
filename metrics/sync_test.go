package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/back2basic/collector/internal/syncloop"
)

// Each sync target has its own series, labelled by target, and none are
// there without a sync.
func TestSyncMetricsByTarget(t *testing.T) {
	m := New(Config{Syncs: []func() syncloop.Stats{
		func() syncloop.Stats { return syncloop.Stats{Target: "postgres", Sent: 40, Failures: 1} },
		func() syncloop.Stats {
			return syncloop.Stats{Target: "http", Pending: 7, Sent: 12, Failures: 3, Failing: true, Lag: 90 * time.Second}
		},
	}})
	want := `
# HELP collector_sync_pending_rows Rows waiting to be copied to the sync target, as of the last attempt.
# TYPE collector_sync_pending_rows gauge
collector_sync_pending_rows{target="http"} 7
collector_sync_pending_rows{target="postgres"} 0
# HELP collector_sync_sent_rows_total Rows copied to the sync target; a batch sent again after a failure counts again.
# TYPE collector_sync_sent_rows_total counter
collector_sync_sent_rows_total{target="http"} 12
collector_sync_sent_rows_total{target="postgres"} 40
# HELP collector_sync_failures_total Attempts to copy rows to the sync target that failed; the rows wait and are sent later.
# TYPE collector_sync_failures_total counter
collector_sync_failures_total{target="http"} 3
collector_sync_failures_total{target="postgres"} 1
# HELP collector_sync_lag_seconds How long rows have waited to be copied to the sync target; 0 while the last attempt sent everything.
# TYPE collector_sync_lag_seconds gauge
collector_sync_lag_seconds{target="http"} 90
collector_sync_lag_seconds{target="postgres"} 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "collector_sync_pending_rows", "collector_sync_sent_rows_total",
		"collector_sync_failures_total", "collector_sync_lag_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(New(Config{}), "collector_sync_pending_rows"); n != 0 {
		t.Errorf("%d sync series without a sync, want none", n)
	}
}
