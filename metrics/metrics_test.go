package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/bpfgo"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/golden"
	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// t0 is a minute boundary.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

var discard = slog.New(slog.DiscardHandler)

// state is the daemon's state as fakes hand it to Metrics.
type state struct {
	flushes        agg.Stats
	datapath       bpfgo.Stats
	ifaces         bpfgo.InterfaceStats
	down, up       uint64
	egress         *report.Egress
	billing        billing.Cycle
	billingErr     error
	billingReads   int
	billingPeriods []billing.Period // as asked, in order
	hourlyFolds    store.Folds
	dailyFolds     store.Folds
}

// billedOn1 is the billing calendar of the tests: from the 1st, in UTC.
// An error leaves it zero, which leaves the billing series out and fails
// the tests that expect them.
var billedOn1, _ = billing.NewCycle(1, time.UTC)

// busy is a state in which every series has a value.
func busy() *state {
	return &state{
		billing: billedOn1,
		flushes: agg.Stats{
			Flushes: 42, LastFlush: t0.Add(-time.Minute), LastFlushDuration: 120 * time.Millisecond,
			LastSuccess: t0.Add(-2 * time.Minute), DrainErrors: 1, Overflow: traffic.Tally{Bytes: 1500, Packets: 3},
			FoldedRows: 65_000, FoldedBytes: 295_230_000,
			Consumers: []agg.ConsumerStats{{Name: "the database /var/lib/collector/traffic.db", PendingRows: 7, Errors: 2}, {Name: "metrics"}},
		},
		datapath: bpfgo.Stats{Drains: 43, DrainTime: 2500 * time.Millisecond, MapEntries: 120, MapCapacity: 65536, CacheHits: 9000, CacheMisses: 1000},
		ifaces: bpfgo.InterfaceStats{
			Attached:     []bpfgo.AttachMode{{Interface: "eth0", XDP: bpfgo.XDPNative, TC: bpfgo.TCX}, {Interface: "vlan7", XDP: bpfgo.XDPViaTC, TC: bpfgo.TCLegacy}},
			AttachErrors: 4,
		},
		down: 5_000_000_000, up: 70_000_000_000,
		// 70 GB sent, 20 GB of it free, 50 GB at 2 a TB; worth 7 SC at
		// 100 SC a TB, 0.35 at 0.05 a siacoin.
		egress: &report.Egress{
			Bill:  cost.Bill{HostBytes: 70e9, FreeBytes: 20e9, BillableBytes: 50e9, Cost: 0.1},
			Worth: cost.Worth{ValueSC: cost.Known(7), Margin: cost.Known(0.25)},
			// 2.4 Mbit/s.
			Percentile95: 2.4e6,
			ProjectedUp:  210e9, ProjectedDown: 15e9, ProjectedTotal: 225e9,
			ProjectedCost: 0.38,
		},
		hourlyFolds: store.Folds{Rows: 3_900_000, Bytes: 17_713_800_000},
		dailyFolds:  store.Folds{Rows: 93_600_000, Bytes: 425_131_200_000},
	}
}

// newMetrics returns Metrics reading s, with series of their own for top
// clients.
func newMetrics(top int, s *state) *Metrics {
	return New(Config{
		TopClients: top,
		Flushes:    func() agg.Stats { return s.flushes },
		Datapath:   func() bpfgo.Stats { return s.datapath },
		Interfaces: func() bpfgo.InterfaceStats { return s.ifaces },
		Billing:    s.billing,
		Billed: func(_ context.Context, p billing.Period) (Billed, error) {
			s.billingReads++
			s.billingPeriods = append(s.billingPeriods, p)
			return Billed{Down: s.down, Up: s.up, Egress: s.egress}, s.billingErr
		},
		Folds:   func() (store.Folds, store.Folds) { return s.hourlyFolds, s.dailyFolds },
		Version: "1.2.3", Commit: "0123abc", BPFObject: "5e1f",
		Log: discard,
	})
}

// row is the seeded traffic of client in the minute at t0.
func row(client string, seed uint64) traffic.Row {
	c, err := traffic.ParseClient(client)
	if err != nil {
		panic(err)
	}
	return traffic.Row{Start: t0, Client: c, Traffic: dbtest.Seeded(seed)}
}

// minute is the period of the minute at start, with rows.
func minute(start time.Time, rows ...traffic.Row) traffic.Period {
	return traffic.Period{Start: start, End: start.Add(time.Minute), Rows: rows}
}

func consume(t *testing.T, m *Metrics, periods ...traffic.Period) {
	t.Helper()
	for _, p := range periods {
		if err := m.Consume(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
}

// fed is Metrics reading a busy state, with a period of three clients and
// other consumed: every series it may emit has a value.
func fed(t *testing.T) *Metrics {
	t.Helper()
	m := newMetrics(2, busy())
	consume(t, m, minute(t0, row("192.0.2.1", 5), row("2001:db8::1", 3), row("192.0.2.2", 1), row("other", 2)))
	return m
}

// gather returns the values of the series c emits by name, then by their
// labels as name=value pairs, sorted by name, comma-separated. It collects
// through a pedantic registry, which checks that every series was
// described.
func gather(t *testing.T, c prometheus.Collector) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]map[string]float64)
	for _, f := range families {
		values := make(map[string]float64)
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			values[strings.Join(labels, ",")] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		out[f.GetName()] = values
	}
	return out
}

// series returns the values of the series named name that c emits, as
// gather does.
func series(t *testing.T, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	return gather(t, c)[name]
}

// scrape returns what /metrics serves for m, as Prometheus reads it.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(NewRegistry(m), promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics answered %s: %s", resp.Status, body)
	}
	return string(body)
}

// Every series, its help, type, labels and value, for a busy collector.
func TestScrape(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(fed(t))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	golden.Check(t, "scrape", out.String())
}

// The host's totals add every period, whoever it holds, so they equal the
// sum of every row handed over.
func TestHostTotals(t *testing.T) {
	m := newMetrics(0, &state{})
	var want traffic.Traffic
	periods := []traffic.Period{
		minute(t0, row("192.0.2.1", 1), row("other", 2)),
		{Start: t0.Add(time.Minute), End: t0.Add(time.Minute)}, // a failed drain
		minute(t0.Add(time.Minute), row("192.0.2.1", 3), row("2001:db8::1", 4)),
	}
	for _, p := range periods {
		for _, r := range p.Rows {
			want.Add(&r.Traffic)
		}
	}
	consume(t, m, periods...)
	checkTotals(t, m, &want)
}

// checkTotals fails unless m's host totals are want.
func checkTotals(t *testing.T, m *Metrics, want *traffic.Traffic) {
	t.Helper()
	bytes := series(t, m, "collector_traffic_bytes_total")
	packets := series(t, m, "collector_traffic_packets_total")
	if len(bytes) != int(traffic.NumClasses)*int(traffic.NumDirections) || len(packets) != len(bytes) {
		t.Errorf("%d byte and %d packet series, want one per class and direction", len(bytes), len(packets))
	}
	eachTally(want, func(class, dir string, w traffic.Tally) {
		key := "class=" + class + ",direction=" + dir
		if bytes[key] != float64(w.Bytes) || packets[key] != float64(w.Packets) {
			t.Errorf("%s: %v bytes, %v packets, want %d, %d", key, bytes[key], packets[key], w.Bytes, w.Packets)
		}
	})
}

// The busiest clients of the last period get series, the rest and Other
// are summed in 'other', and a client of an earlier period leaves none
// behind.
func TestTopClients(t *testing.T) {
	m := newMetrics(2, &state{})
	if got := series(t, m, "collector_client_last_period_bytes"); len(got) != 0 {
		t.Fatalf("client series before any period: %v", got)
	}

	consume(t, m, minute(t0, row("192.0.2.3", 1), row("192.0.2.1", 5), row("other", 2), row("2001:db8::1", 3)))
	other := dbtest.Seeded(1)
	other.Add(new(dbtest.Seeded(2)))
	checkClients(t, m, time.Minute, map[string]traffic.Traffic{
		"192.0.2.1": dbtest.Seeded(5), "2001:db8::1": dbtest.Seeded(3), "other": other,
	})

	// A failed drain's period, of no length, keeps the last one.
	consume(t, m, traffic.Period{Start: t0.Add(time.Minute), End: t0.Add(time.Minute)})
	checkClients(t, m, time.Minute, map[string]traffic.Traffic{
		"192.0.2.1": dbtest.Seeded(5), "2001:db8::1": dbtest.Seeded(3), "other": other,
	})

	// The clients of the last period alone; 'other' moved nothing.
	consume(t, m, traffic.Period{Start: t0.Add(time.Minute), End: t0.Add(90 * time.Second), Rows: []traffic.Row{row("192.0.2.3", 6)}})
	checkClients(t, m, 30*time.Second, map[string]traffic.Traffic{"192.0.2.3": dbtest.Seeded(6)})

	// A quiet period: no client at all.
	consume(t, m, minute(t0.Add(2*time.Minute)))
	checkClients(t, m, time.Minute, map[string]traffic.Traffic{})
}

// checkClients fails unless the last period's series are a period of
// length d in which exactly want moved.
func checkClients(t *testing.T, m *Metrics, d time.Duration, want map[string]traffic.Traffic) {
	t.Helper()
	if got := series(t, m, "collector_last_period_duration_seconds")[""]; got != d.Seconds() {
		t.Errorf("last period lasted %vs, want %v", got, d)
	}
	bytes := series(t, m, "collector_client_last_period_bytes")
	packets := series(t, m, "collector_client_last_period_packets")
	clients := make(map[string]bool)
	for key := range bytes {
		_, rest, _ := strings.Cut(key, "client=")
		client, _, _ := strings.Cut(rest, ",")
		clients[client] = true
	}
	if got, want := slices.Sorted(maps.Keys(clients)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, want) {
		t.Errorf("clients with series: %q, want %q", got, want)
	}
	for client, tr := range want {
		eachTally(&tr, func(class, dir string, w traffic.Tally) {
			key := fmt.Sprintf("class=%s,client=%s,direction=%s", class, client, dir)
			if bytes[key] != float64(w.Bytes) || packets[key] != float64(w.Packets) {
				t.Errorf("%s: %v bytes, %v packets, want %d, %d", key, bytes[key], packets[key], w.Bytes, w.Packets)
			}
		})
	}
}

// With METRICS_TOP_CLIENTS=0 there are no per-client series at all.
func TestNoClientSeries(t *testing.T) {
	m := newMetrics(0, &state{})
	consume(t, m, minute(t0, row("192.0.2.1", 5), row("other", 1)))
	for _, name := range []string{"collector_client_last_period_bytes", "collector_client_last_period_packets", "collector_last_period_duration_seconds"} {
		if got := series(t, m, name); len(got) != 0 {
			t.Errorf("%s: %v", name, got)
		}
	}
}

// A source left out leaves its series out, and nothing else.
func TestSourcesLeftOut(t *testing.T) {
	m := New(Config{Log: discard})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	want := []string{"collector_build_info", "collector_traffic_bytes_total", "collector_traffic_packets_total"}
	if !slices.Equal(names, want) {
		t.Errorf("series = %q, want %q", names, want)
	}
}

// The billing period is read once per flush, not per scrape; a failure
// leaves it out of the scrape and is counted, and it is read again at the
// next scrape. The period read is the calendar's period holding the
// scrape.
func TestBilling(t *testing.T) {
	s := busy()
	m := newMetrics(0, s)
	began := time.Now()
	check := func(what string, reads int, want map[string]float64, errs float64) {
		t.Helper()
		got := gather(t, m)
		if s.billingReads != reads || !maps.Equal(got["collector_billing_period_bytes"], want) {
			t.Errorf("%s: %d reads, %v, want %d reads, %v", what, s.billingReads, got["collector_billing_period_bytes"], reads, want)
		}
		if got := got["collector_errors_total"]["kind=billing"]; got != errs {
			t.Errorf("%s: %v billing errors, want %v", what, got, errs)
		}
	}
	first := map[string]float64{"direction=down": 5e9, "direction=up": 7e10}
	check("first scrape", 1, first, 0)
	check("second scrape", 1, first, 0)

	s.down, s.billingErr = 6e9, errors.New("database is locked")
	consume(t, m, minute(t0))
	check("database locked", 2, nil, 1)
	check("still locked", 3, nil, 2)

	s.billingErr = nil
	later := map[string]float64{"direction=down": 6e9, "direction=up": 7e10}
	check("database back", 4, later, 2)
	check("no flush since", 4, later, 2)
	consume(t, m, minute(t0.Add(time.Minute)))
	check("next flush", 5, later, 2)

	ended := time.Now()
	for _, p := range s.billingPeriods {
		if p.Cycle() != s.billing || p.Start.After(ended) || !p.End.After(began) {
			t.Errorf("read the billing period [%s, %s), want the one holding the scrape, between %s and %s", p.Start, p.End, began, ended)
		}
	}
}

// The scrape passes client_golang's linter, the daemon's Go and process
// metrics included.
func TestLint(t *testing.T) {
	problems, err := testutil.GatherAndLint(NewRegistry(fed(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// The scrape passes promtool check metrics, as CI checks it.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool(t, scrape(t, fed(t)), "check", "metrics")
}

// What the database holds equals the host's totals once a flush went
// through: rows the database refused meanwhile were counted once by
// Metrics, and handed to the database again until it took them.
func TestTotalsMatchTheDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.db")
	st, err := store.Open(path, store.Options{Log: discard, LockWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := newMetrics(2, &state{})
	now := time.Now().Truncate(time.Minute)
	clock := now
	var drained []traffic.Sample
	a := agg.NewAggregator(drainFunc(func() ([]traffic.Sample, error) {
		out := drained
		drained = nil
		return out, nil
	}), agg.Config{Log: discard, Now: func() time.Time { return clock }}, st, m)

	flush := func(samples ...traffic.Sample) error {
		drained = samples
		clock = clock.Add(time.Minute)
		return a.Flush(t.Context())
	}
	client := func(i int) traffic.Client { return traffic.ClientOf(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})) }
	if err := flush(traffic.Sample{Client: client(1), Traffic: dbtest.Seeded(1)}, traffic.Sample{Client: traffic.Other, Traffic: dbtest.Seeded(2)}); err != nil {
		t.Fatal(err)
	}
	unlock := dbtest.LockFile(t, path)
	if err := flush(traffic.Sample{Client: client(2), Traffic: dbtest.Seeded(3)}); err == nil {
		t.Fatal("the locked database took a period")
	}
	unlock()
	if err := flush(); err != nil {
		t.Fatal(err)
	}

	var stored traffic.Traffic
	err = st.Rows(t.Context(), store.Minutes, store.Query{}, func(r *store.Row) error {
		stored.Add(&r.Traffic)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stored.IsZero() {
		t.Fatal("the database holds nothing")
	}
	checkTotals(t, m, &stored)
}

// drainFunc adapts a function to agg.Drainer.
type drainFunc func() ([]traffic.Sample, error)

func (f drainFunc) Drain() ([]traffic.Sample, error) { return f() }

// Scrapes run while periods are consumed (go test -race checks it).
func TestScrapeWhileConsuming(t *testing.T) {
	m := newMetrics(2, &state{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			_ = m.Consume(t.Context(), minute(t0.Add(time.Duration(i)*time.Minute), row("192.0.2.1", uint64(i)), row("other", 1)))
		}
	}()
	for range 20 {
		if _, err := NewRegistry(m).Gather(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
