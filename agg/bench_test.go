package agg

import (
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/internal/testkit/goal"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// reportPeakRSS reports the most memory the process has held, as the
// kernel counts it: what a flush costs the host, Go heap and SQLite's
// caches alike. It returns it in MiB.
func reportPeakRSS(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	mib := float64(ru.Maxrss) / 1024 // Maxrss is in KiB on Linux
	b.ReportMetric(mib, "peak-RSS-MiB")
	return mib
}

// clientAddr returns the i-th of a set of distinct addresses, half IPv4 and
// half IPv6.
func clientAddr(i int) netip.Addr {
	if i%2 == 0 {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// A flush of 100,000 active clients: the drain handed over, one transaction
// of new rows, as at every minute of a busy host with MAX_CLIENT_ROWS as
// large. Run it first: peak RSS covers the whole process so far.
func BenchmarkFlush100kClients(b *testing.B) {
	const clients = 100_000
	samples := make([]traffic.Sample, clients)
	for i := range samples {
		samples[i] = traffic.Sample{Client: traffic.ClientOf(clientAddr(i)), Traffic: dbtest.Seeded(uint64(i))}
	}
	clk := &clock{t: t0}
	st := openPath(b, newPath(b), store.Options{Now: clk.now})
	d := drainFunc(func() ([]traffic.Sample, error) { return samples, nil })
	a := NewAggregator(d, Config{Log: discard, Now: clk.now, MaxClientRows: clients}, st)
	for b.Loop() {
		clk.set(clk.now().Add(time.Minute)) // new rows each round, as in production
		if err := a.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(clients)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	peak := reportPeakRSS(b)
	goal.Report(b, "a 100,000-row flush: time", goal.None, b.Elapsed().Seconds()/float64(b.N), "s", 0.3)
	goal.Report(b, "a 100,000-row flush: peak RSS", goal.None, peak, "MiB", 60)
}

// A sustained flood of forged sources at the defaults: every minute 65,536
// new addresses (about 1,100 a second, 40 Mbit/s) of three full-size
// frames each, beside 20 real renters that proved they are real, through
// the real Aggregator and store for an hour of minute flushes. The hour
// ends at midnight, so its hourly and its day's daily rollup run too. The
// row budget (MaxClientRows) keeps each minute's rows to its default;
// db-MB/day is the hour's growth times 24 (the daily rollup counted 24
// times over), ms/flush the mean time of a flush at the budget and
// max-ms/flush the longest, the one that closes the hour and rolls it and
// the day up. Every renter must have its hourly row. Run it alone (-bench
// FloodDatabaseGrowth) for the peak RSS of a daemon under the flood.
func BenchmarkFloodDatabaseGrowth(b *testing.B) {
	const (
		forgedPerMinute = 65_536
		realClients     = 20
		minutes         = 60
	)
	midnight := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "flood.db")
		clk := &clock{t: midnight.Add(-minutes * time.Minute)}
		st := openPath(b, path, store.Options{Now: clk.now, MaxClientRows: DefaultMaxClientRows})
		var n int
		var forged traffic.Traffic
		forged[traffic.QUIC][traffic.Down] = traffic.Tally{Bytes: 3 * 1514, Packets: 3}
		d := drainFunc(func() ([]traffic.Sample, error) {
			samples := make([]traffic.Sample, 0, forgedPerMinute+realClients)
			for range forgedPerMinute {
				n++
				samples = append(samples, traffic.Sample{Client: traffic.ClientOf(clientAddr(1_000_000 + n)), Traffic: forged})
			}
			for i := range realClients {
				samples = append(samples, traffic.Sample{Client: traffic.ClientOf(clientAddr(i)), Traffic: dbtest.Seeded(uint64(i + 10)), Proven: true})
			}
			return samples, nil
		})
		a := NewAggregator(d, Config{Log: discard, Now: clk.now}, st)
		before := fileSize(b, path)
		var flushing, longest time.Duration
		for range minutes {
			clk.set(clk.now().Add(time.Minute))
			began := time.Now()
			if err := a.Flush(b.Context()); err != nil {
				b.Fatal(err)
			}
			took := time.Since(began)
			flushing += took
			longest = max(longest, took)
		}
		grown := fileSize(b, path) - before
		hourly := readRows(b, st, store.Hours)
		for i := range realClients {
			if _, ok := hourly[rowKey{midnight.Add(-time.Hour).Unix(), traffic.ClientOf(clientAddr(i))}]; !ok {
				b.Fatalf("renter %s has no hourly row of its own", clientAddr(i))
			}
		}
		if len(hourly) > DefaultMaxClientRows+1 {
			b.Fatalf("%d hourly rows, want at most %d and 'other'", len(hourly), DefaultMaxClientRows)
		}
		b.ReportMetric(float64(grown)*24/1e6, "db-MB/day")
		b.ReportMetric(float64(flushing.Milliseconds())/minutes, "ms/flush")
		b.ReportMetric(float64(longest.Milliseconds()), "max-ms/flush")
	}
	reportPeakRSS(b)
}

// fileSize is the size of a database with its WAL.
func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return total
}
