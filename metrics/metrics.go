// Package metrics is the collector's /metrics: the traffic counted for the
// host, its busiest clients of the last flush period, the billing period
// so far, and the health of the collector itself.
//
// Metrics is a prometheus.Collector that reads the daemon's state when it
// is scraped and emits constant metrics, so a client or an interface that
// went away leaves no series behind, and an agg.Consumer that adds up
// every closed period. Nothing is registered anywhere but in the registry
// NewRegistry returns.
package metrics

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/internal/outage"
	"github.com/back2basic/collector/internal/syncloop"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Config says where Metrics reads the daemon's state. The sources are
// functions because Metrics is made before what it reads: the Aggregator
// takes it as a consumer when it is made, the interfaces are attached
// last. They are called at scrape time only; a source left nil leaves its
// series out.
type Config struct {
	// TopClients is how many clients of the last flush period get series
	// of their own, the rest summed in 'other' (METRICS_TOP_CLIENTS); 0
	// gives no per-client series.
	TopClients int
	// Flushes reads how the flushes went: the Aggregator's Stats.
	Flushes func() agg.Stats
	// Datapath reads what the counter maps went through: the Counters'
	// Stats.
	Datapath func() bpfgo.Stats
	// Interfaces reads the interfaces counted on: the Interfaces' Stats.
	Interfaces func() bpfgo.InterfaceStats
	// Billing is the billing calendar (BILLING_DAY in the operator's
	// zone), and Billed returns what the database holds for its period
	// holding the scrape, within billingTimeout. Only a flush changes the
	// answer, so it is asked again only after one, or after it failed.
	Billing billing.Cycle
	Billed  func(ctx context.Context, p billing.Period) (Billed, error)
	// Alerts reads the alerts and quotas.
	Alerts Alerts
	// Folds reads what the row budgets of the hourly and daily
	// rollups folded: the Store's RollupFolds.
	Folds func() (hourly, daily store.Folds)
	// Hostd reads the billing period p so far beside hostd's own
	// figures (HostdOf a store); nil when hostd is not read.
	Hostd func(ctx context.Context, p billing.Period) (beside.Figures, bool, error)
	// Syncs read how each copy to a sync target (PostgreSQL, HTTP) is
	// doing; none without one.
	Syncs []func() syncloop.Stats
	// Version, Commit and BPFObject name the build: its version, its
	// commit and the SHA-256 of its BPF object.
	Version, Commit, BPFObject string
	// Log hears about the billing period failing to be read, once as it
	// starts and once as it ends; default slog.Default().
	Log *slog.Logger
}

// Metrics is the collector's metrics: New makes it, NewRegistry serves it,
// and the Aggregator hands it every period.
type Metrics struct {
	cfg       Config
	buildInfo prometheus.Metric

	mu      sync.Mutex
	host    traffic.Traffic // every period since the start
	last    *lastPeriod     // nil before the first drained period
	flushes uint64          // periods consumed: tells the billing cache it is old

	billing billingCache
	hostd   hostdReader
}

// New returns the metrics cfg describes.
func New(cfg Config) *Metrics {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m := &Metrics{cfg: cfg}
	m.buildInfo = gauge(buildInfoDesc, 1, cfg.Version, cfg.Commit, cfg.BPFObject)
	m.billing.failing.Start = "cannot read the billing period for /metrics; its series are left out until it can"
	m.billing.failing.End = "reading the billing period for /metrics again"
	m.hostd.failing = outage.Outage{Start: "cannot read hostd's figures for /metrics; their series are left out until it can", End: "reading hostd's figures for /metrics again"}
	return m
}

// NewRegistry returns a registry holding m and the Go runtime's and the
// process's metrics, which is what /metrics serves.
func NewRegistry(m *Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// The labels of the series.
const (
	labelClass     = "class"
	labelDirection = "direction"
	labelClient    = "client"
	labelConsumer  = "consumer"
	labelKind      = "kind"
)

// The kinds of collector_errors_total.
const (
	kindDrain   = "drain"
	kindAttach  = "attach"
	kindBilling = "billing"
)

var (
	buildInfoDesc = prometheus.NewDesc("collector_build_info",
		"The build that runs: its version, its commit and the SHA-256 of its BPF object (go_info has its Go version); always 1.",
		[]string{"version", "commit", "bpf_object_sha256"}, nil)
	errorsDesc = prometheus.NewDesc("collector_errors_total",
		"Failures by kind: drain (reading the kernel's counters; the next drain hands their traffic over), attach (attaching again to an interface that came back), billing (reading the billing period for a scrape).",
		[]string{labelKind}, nil)
)

// descs describe every series Metrics may emit.
var descs = []*prometheus.Desc{
	buildInfoDesc, errorsDesc,
	trafficBytesDesc, trafficPacketsDesc, clientBytesDesc, clientPacketsDesc, lastPeriodDesc,
	billingDesc, projectedDesc, billableDesc, costDesc, projectedCostDesc, valueDesc, marginDesc, percentileDesc,
	flushesDesc, lastFlushDesc, lastFlushDurationDesc, lastSuccessDesc, pendingRowsDesc, consumerErrorsDesc,
	overflowBytesDesc, overflowPacketsDesc,
	drainsDesc, drainSecondsDesc, mapEntriesDesc, mapCapacityDesc, cacheHitsDesc, cacheMissesDesc, interfaceInfoDesc,
}

// Describe sends the descriptors of every series Metrics may emit.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range slices.Concat(descs, budgetDescs, alertDescs, syncDescs, hostdDescs) {
		ch <- d
	}
}

// Collect reads the daemon's state and sends it as metrics.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ch <- m.buildInfo
	m.collectTraffic(ch)
	m.collectBilling(ch)
	m.collectHostd(ch)
	if m.cfg.Flushes != nil {
		s := m.cfg.Flushes()
		collectFlushes(ch, s)
		collectFlushFolds(ch, s)
	}
	if m.cfg.Folds != nil {
		hourly, daily := m.cfg.Folds()
		collectRollupFolds(ch, hourly, daily)
	}
	if m.cfg.Datapath != nil {
		collectDatapath(ch, m.cfg.Datapath())
	}
	if m.cfg.Interfaces != nil {
		collectInterfaces(ch, m.cfg.Interfaces())
	}
	collectAlerts(ch, m.cfg.Alerts)
	for _, stats := range m.cfg.Syncs {
		collectSync(ch, stats())
	}
}

// counter returns a counter of value v.
func counter(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
}

// gauge returns a gauge of value v.
func gauge(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
}
