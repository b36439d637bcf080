package metrics

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/back2basic/collector/traffic"
)

var (
	trafficBytesDesc = prometheus.NewDesc("collector_traffic_bytes_total",
		"Bytes (L2 frames) the host exchanged with its clients since the collector started, by class and direction; each flush period is added as it is drained.",
		[]string{labelClass, labelDirection}, nil)
	trafficPacketsDesc = prometheus.NewDesc("collector_traffic_packets_total",
		"Packets (L2 frames) the host exchanged with its clients since the collector started, by class and direction; each flush period is added as it is drained.",
		[]string{labelClass, labelDirection}, nil)
	clientBytesDesc = prometheus.NewDesc("collector_client_last_period_bytes",
		`Bytes the busiest clients of the last flush period moved in it, by class and direction (METRICS_TOP_CLIENTS of them); client="other" sums the rest.`,
		[]string{labelClient, labelClass, labelDirection}, nil)
	clientPacketsDesc = prometheus.NewDesc("collector_client_last_period_packets",
		`Packets the busiest clients of the last flush period moved in it, by class and direction (METRICS_TOP_CLIENTS of them); client="other" sums the rest.`,
		[]string{labelClient, labelClass, labelDirection}, nil)
	lastPeriodDesc = prometheus.NewDesc("collector_last_period_duration_seconds",
		"The length of the last flush period, which the collector_client_last_period_* series cover.",
		nil, nil)
)

// lastPeriod is what the busiest clients of the last drained period moved.
// It is not changed once made, so scrapes share it.
type lastPeriod struct {
	duration time.Duration
	// clients are the busiest first, then 'other' when it moved anything.
	clients []clientTraffic
}

type clientTraffic struct {
	client  string
	traffic traffic.Traffic
}

// String names Metrics in the journal, and in the consumer label.
func (m *Metrics) String() string { return "metrics" }

// Consume adds p to the host's totals and keeps what its busiest clients
// moved. It never fails.
func (m *Metrics) Consume(_ context.Context, p traffic.Period) error {
	var host traffic.Traffic
	for i := range p.Rows {
		host.Add(&p.Rows[i].Traffic)
	}
	var last *lastPeriod
	// A period of no length comes of a failed drain and holds no new
	// traffic: the last one drained stays the last.
	if m.cfg.TopClients > 0 && p.End.After(p.Start) {
		last = &lastPeriod{duration: p.End.Sub(p.Start), clients: busiest(p.Rows, m.cfg.TopClients)}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.host.Add(&host)
	m.flushes++
	if last != nil {
		m.last = last
	}
	return nil
}

// busiest returns the n clients of rows that moved the most bytes, the
// busiest first, then 'other': the rest and rows of Other.
func busiest(rows []traffic.Row, n int) []clientTraffic {
	var other traffic.Traffic
	byClient := make(map[traffic.Client]*traffic.Traffic)
	for i := range rows {
		r := &rows[i]
		if r.Client.IsOther() {
			other.Add(&r.Traffic)
			continue
		}
		sum := byClient[r.Client]
		if sum == nil {
			sum = new(traffic.Traffic)
			byClient[r.Client] = sum
		}
		sum.Add(&r.Traffic)
	}
	clients := slices.SortedFunc(maps.Keys(byClient), func(x, y traffic.Client) int {
		return cmp.Or(cmp.Compare(byClient[y].Bytes(), byClient[x].Bytes()), x.Compare(y))
	})
	out := make([]clientTraffic, 0, min(n, len(clients))+1)
	for i, c := range clients {
		if i < n {
			out = append(out, clientTraffic{client: c.String(), traffic: *byClient[c]})
		} else {
			other.Add(byClient[c])
		}
	}
	if !other.IsZero() {
		out = append(out, clientTraffic{client: traffic.Other.String(), traffic: other})
	}
	return out
}

// collectTraffic sends the host's totals and the last period's clients.
func (m *Metrics) collectTraffic(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	host, last := m.host, m.last
	m.mu.Unlock()
	eachTally(&host, func(class, dir string, t traffic.Tally) {
		ch <- counter(trafficBytesDesc, float64(t.Bytes), class, dir)
		ch <- counter(trafficPacketsDesc, float64(t.Packets), class, dir)
	})
	if last == nil {
		return
	}
	ch <- gauge(lastPeriodDesc, last.duration.Seconds())
	for _, c := range last.clients {
		eachTally(&c.traffic, func(class, dir string, t traffic.Tally) {
			ch <- gauge(clientBytesDesc, float64(t.Bytes), c.client, class, dir)
			ch <- gauge(clientPacketsDesc, float64(t.Packets), c.client, class, dir)
		})
	}
}

// eachTally calls f with every class and direction of t, by name.
func eachTally(t *traffic.Traffic, f func(class, dir string, t traffic.Tally)) {
	for _, class := range traffic.Classes() {
		for dir := range traffic.NumDirections {
			f(class.String(), dir.String(), t[class][dir])
		}
	}
}
