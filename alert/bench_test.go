package alert

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/internal/testkit/goal"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// What a start costs a busy host: the alerts' part of the start path, the
// time from New to the end of Load that the daemon's READY waits for, with
// a week of minute rows of 200 clients that all move consensus traffic (2
// million rows) and a quota set; before, Learn's reading of that week came
// on top, as it did when Load read the baselines too.
func BenchmarkLoadBusyWeek(b *testing.B) {
	const (
		clients = 200
		days    = 7
	)
	path := filepath.Join(b.TempDir(), "collector.db")
	end := day0.AddDate(0, 0, days)
	st, err := store.Open(path, store.Options{Log: discard, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	began := time.Now()
	for hour := day0; hour.Before(end); hour = hour.Add(time.Hour) {
		rows := make([]traffic.Row, 0, clients*60)
		for m := hour; m.Before(hour.Add(time.Hour)); m = m.Add(time.Minute) {
			for i := range clients {
				client := traffic.ClientOf(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
				rows = append(rows, traffic.Row{Start: m, Client: client, Traffic: consensus(float64(1000 + i))})
			}
		}
		// Consume, as the daemon stores: rolled up as it goes.
		if err := st.Consume(b.Context(), traffic.Period{Start: hour, End: hour.Add(time.Hour), Rows: rows}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(time.Since(began).Seconds(), "generate-s")
	cycle, err := billing.NewCycle(1, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	var load, learn time.Duration
	for b.Loop() {
		began := time.Now()
		d, err := New(Config{Store: st, Log: discard, Now: func() time.Time { return end }, Quota: Quota{Total: 1 << 40, Billing: cycle}})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Load(b.Context()); err != nil {
			b.Fatal(err)
		}
		loaded := time.Now()
		if err := d.Learn(b.Context()); err != nil {
			b.Fatal(err)
		}
		load, learn = load+loaded.Sub(began), learn+time.Since(loaded)
	}
	perLoop := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(perLoop(load), "load-s")
	b.ReportMetric(perLoop(learn), "learn-s")
	goal.Report(b, "READY with a busy week of history", perLoop(load+learn), perLoop(load), "s", 0.5)
}
