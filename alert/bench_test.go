package alert

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// What a start costs a busy host: Load learns the baselines from a week of
// minute rows of 200 clients that all move consensus traffic (2 million
// rows), before the daemon says it is ready.
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
		if err := st.Write(b.Context(), rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(time.Since(began).Seconds(), "generate-s")
	for b.Loop() {
		d, err := New(Config{Store: st, Log: discard, Now: func() time.Time { return end }})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Load(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
