package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
)

// The flushes, from the Aggregator.
var (
	flushesDesc = prometheus.NewDesc("collector_flushes_total",
		"Flushes: the kernel's counters drained and the period handed to the database and the other consumers, failed ones included.",
		nil, nil)
	lastFlushDesc = prometheus.NewDesc("collector_last_flush_timestamp_seconds",
		"When the last flush ended, in seconds since the epoch.",
		nil, nil)
	lastFlushDurationDesc = prometheus.NewDesc("collector_last_flush_duration_seconds",
		"How long the last flush took: the drain and every consumer.",
		nil, nil)
	lastSuccessDesc = prometheus.NewDesc("collector_last_successful_flush_timestamp_seconds",
		"When the last flush ended whose drain worked and whose rows every consumer took, in seconds since the epoch: nothing counted before it waits in memory. Before the first, when the collector started.",
		nil, nil)
	pendingRowsDesc = prometheus.NewDesc("collector_pending_rows",
		"Rows a consumer did not take, kept in memory for it and handed again every flush.",
		[]string{labelConsumer}, nil)
	consumerErrorsDesc = prometheus.NewDesc("collector_consumer_errors_total",
		"Flush periods a consumer refused; their rows wait in memory for the next flush.",
		[]string{labelConsumer}, nil)
	overflowBytesDesc = prometheus.NewDesc("collector_overflow_bytes_total",
		"Bytes counted in the counter map's overflow entry because the map was full (MAX_CLIENTS): the clients they came from are not told apart, the totals stay exact.",
		nil, nil)
	overflowPacketsDesc = prometheus.NewDesc("collector_overflow_packets_total",
		"Packets counted in the counter map's overflow entry because the map was full (MAX_CLIENTS).",
		nil, nil)
)

// collectFlushes sends how the flushes went.
func collectFlushes(ch chan<- prometheus.Metric, s agg.Stats) {
	ch <- counter(flushesDesc, float64(s.Flushes))
	if s.Flushes > 0 {
		ch <- gauge(lastFlushDesc, seconds(s.LastFlush))
		ch <- gauge(lastFlushDurationDesc, s.LastFlushDuration.Seconds())
	}
	ch <- gauge(lastSuccessDesc, seconds(s.LastSuccess))
	ch <- counter(errorsDesc, float64(s.DrainErrors), kindDrain)
	ch <- counter(overflowBytesDesc, float64(s.Overflow.Bytes))
	ch <- counter(overflowPacketsDesc, float64(s.Overflow.Packets))
	for _, c := range s.Consumers {
		ch <- gauge(pendingRowsDesc, float64(c.PendingRows), c.Name)
		ch <- counter(consumerErrorsDesc, float64(c.Errors), c.Name)
	}
}

// seconds returns t in seconds since the epoch.
func seconds(t time.Time) float64 {
	return float64(t.UnixNano()) / float64(time.Second)
}

// The counter maps and the interfaces, from the datapath.
var (
	drainsDesc = prometheus.NewDesc("collector_drains_total",
		"Drains of the kernel's counter map, failed ones included.",
		nil, nil)
	drainSecondsDesc = prometheus.NewDesc("collector_drain_duration_seconds_total",
		"Time spent draining the kernel's counter map: mostly the kernel waiting until no program can still write to the map swapped out.",
		nil, nil)
	mapEntriesDesc = prometheus.NewDesc("collector_map_entries",
		"Clients the counter map held when it was last drained, those kept room for that sent nothing included.",
		nil, nil)
	mapCapacityDesc = prometheus.NewDesc("collector_map_capacity",
		"Clients the counter map holds in a flush period (MAX_CLIENTS); further new clients are counted in its overflow entry.",
		nil, nil)
	cacheHitsDesc = prometheus.NewDesc("collector_cache_hits_total",
		"Sia packets added to a CPU's cache of the last client it counted in their direction, with no lookup in the counter map. The hit rate is this over it plus collector_cache_misses_total; counted at each flush.",
		nil, nil)
	cacheMissesDesc = prometheus.NewDesc("collector_cache_misses_total",
		"Sia packets that cost a lookup in the counter map: a client other than the last one its CPU counted in that direction, or a client's first proof in the cache; counted at each flush.",
		nil, nil)
	interfaceInfoDesc = prometheus.NewDesc("collector_interface_info",
		"An interface counted on now, and how: xdp_mode native, generic, or tc (a TC ingress program instead of XDP); tc_mode tcx or legacy. Always 1.",
		[]string{"interface", "xdp_mode", "tc_mode"}, nil)
)

// collectDatapath sends what the counter maps went through.
func collectDatapath(ch chan<- prometheus.Metric, s bpfgo.Stats) {
	ch <- counter(drainsDesc, float64(s.Drains))
	ch <- counter(drainSecondsDesc, s.DrainTime.Seconds())
	ch <- gauge(mapEntriesDesc, float64(s.MapEntries))
	ch <- gauge(mapCapacityDesc, float64(s.MapCapacity))
	ch <- counter(cacheHitsDesc, float64(s.CacheHits))
	ch <- counter(cacheMissesDesc, float64(s.CacheMisses))
}

// collectInterfaces sends the interfaces counted on and the failures to
// attach again.
func collectInterfaces(ch chan<- prometheus.Metric, s bpfgo.InterfaceStats) {
	ch <- counter(errorsDesc, float64(s.AttachErrors), kindAttach)
	for _, a := range s.Attached {
		ch <- gauge(interfaceInfoDesc, 1, a.Interface, string(a.XDP), string(a.TC))
	}
}
