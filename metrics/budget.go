package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/store"
)

// The row budget (MAX_CLIENT_ROWS), from the Aggregator for the flush
// periods and from the store for the rollups.
var (
	budgetFoldedClientsDesc = prometheus.NewDesc("collector_row_budget_folded_clients_total",
		"Client rows the row budget (MAX_CLIENT_ROWS) summed into 'other' because a flush period, an hour or a day (budget flush, hour, day) had more clients than it; the totals stay exact.",
		[]string{labelBudget}, nil)
	budgetFoldedBytesDesc = prometheus.NewDesc("collector_row_budget_folded_bytes_total",
		"Bytes of the client rows the row budget (MAX_CLIENT_ROWS) summed into 'other', by budget: flush, hour, day.",
		[]string{labelBudget}, nil)
)

// labelBudget says which row budget folded: a flush period's, or an
// hour's or a day's in the rollups.
const labelBudget = "budget"

var budgetDescs = []*prometheus.Desc{budgetFoldedClientsDesc, budgetFoldedBytesDesc}

// collectFlushFolds sends what the row budget of the flush periods folded.
func collectFlushFolds(ch chan<- prometheus.Metric, s agg.Stats) {
	collectFolds(ch, "flush", store.Folds{Rows: s.FoldedRows, Bytes: s.FoldedBytes})
}

// collectRollupFolds sends what the row budgets of the rollups folded.
func collectRollupFolds(ch chan<- prometheus.Metric, hourly, daily store.Folds) {
	collectFolds(ch, "hour", hourly)
	collectFolds(ch, "day", daily)
}

func collectFolds(ch chan<- prometheus.Metric, budget string, f store.Folds) {
	ch <- counter(budgetFoldedClientsDesc, float64(f.Rows), budget)
	ch <- counter(budgetFoldedBytesDesc, float64(f.Bytes), budget)
}
