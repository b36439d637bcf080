package agg

import (
	"context"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/back2basic/collector/bpfgo"
)

// reportPeakRSS reports the most memory the process has held, as the
// kernel counts it: what a flush costs the host, Go heap and SQLite's
// caches alike.
func reportPeakRSS(b *testing.B) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB") // Maxrss is in KiB on Linux
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
// of new rows, as at every minute of a busy host. Run it first: peak RSS
// covers the whole process so far.
func BenchmarkFlush100kClients(b *testing.B) {
	const clients = 100_000
	samples := make([]bpfgo.Sample, clients)
	for i := range samples {
		samples[i] = bpfgo.Sample{Client: clientAddr(i), Traffic: traffic(uint64(i))}
	}
	st := openStore(b)
	clk := &clock{t: t0}
	d := drainFunc(func() ([]bpfgo.Sample, error) { return samples, nil })
	a := NewAggregator(d, st, Config{Log: discard, Now: clk.now})
	for b.Loop() {
		clk.set(clk.now().Add(time.Minute)) // new rows each round, as in production
		if err := a.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(clients)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	reportPeakRSS(b)
}

var fullYear = flag.Bool("year.full", false, "write every minute of BenchmarkYear's year (about ten minutes on two cores) instead of hours before its last 15 days")

// yearClients is how many clients are active every minute of the synthetic
// year; a twentieth of them are new each day, the rest stay.
const yearClients = 200

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// yearDB is a database holding a synthetic year of traffic.
type yearDB struct {
	path  string
	end   time.Time // the year's last minute is just before it
	took  time.Duration
	bytes int64
}

// buildYear writes a year of traffic of yearClients clients a minute
// through Store.write and Store.maintain, the functions every Flush calls,
// with the clock of the data: rollups and retention run as they would, a
// day's rows at a time rather than a minute's. Unless -year.full, the days
// before the last 15 are written as one row per client and hour, filed at
// the hour's first minute: by the end retention has deleted their minute
// rows either way, and the hourly and daily rows rolled up from them are
// the same rows.
func buildYear(ctx context.Context, dir string) (*yearDB, error) {
	// It ends at 10:30 on the year's last day, as if now: today has
	// hourly rows to 10:00 and minute rows since.
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	year := &yearDB{path: filepath.Join(dir, "year.db"), end: start.AddDate(1, 0, -1).Add(10*time.Hour + 30*time.Minute)}
	st, err := open(year.path, busyTimeout, discard)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	active := make([]int, yearClients)
	for i := range active {
		active[i] = i
	}
	next := yearClients
	began := time.Now()
	for day := start; day.Before(year.end); day = day.AddDate(0, 0, 1) {
		names := make(map[netip.Addr]name)
		for i := range yearClients / 20 {
			active[rng.IntN(yearClients)] = next
			if i%2 == 0 {
				names[clientAddr(next)] = name{dns: "host-" + clientAddr(next).String() + ".example.net", at: day.Unix()}
			}
			next++
		}
		end := minTime(day.AddDate(0, 0, 1), year.end)
		step := time.Minute
		if !*fullYear && end.Before(year.end.AddDate(0, 0, -15)) {
			step = time.Hour
		}
		rows := make(map[rowKey]*bpfgo.Traffic, int(24*time.Hour/step)*yearClients)
		for m := day; m.Before(end); m = m.Add(step) {
			for _, c := range active {
				rows[rowKey{m.Unix(), clientAddr(c)}] = yearTraffic(rng, int(step/time.Minute))
			}
		}
		if err := st.write(ctx, rows, names); err != nil {
			return nil, err
		}
		if err := st.maintain(ctx, end, end, Retention{}, time.Hour); err != nil {
			return nil, err
		}
	}
	year.took = time.Since(began)
	info, err := os.Stat(year.path)
	if err != nil {
		return nil, err
	}
	year.bytes = info.Size()
	return year, nil
}

// yearTraffic is one client's traffic over some minutes: mostly siamux,
// some QUIC, a little consensus. In a minute, each direction of each class
// moves something two times out of three; over an hour, all of them do.
func yearTraffic(rng *rand.Rand, minutes int) *bpfgo.Traffic {
	var t bpfgo.Traffic
	for c, scale := range [bpfgo.NumClasses]uint64{bpfgo.Consensus: 50_000, bpfgo.Siamux: 20_000_000, bpfgo.QUIC: 5_000_000} {
		for d := range t[c] {
			if minutes > 1 || rng.IntN(3) > 0 {
				bytes := rng.Uint64N(scale * uint64(max(minutes*2/3, 1)))
				t[c][d] = bpfgo.Tally{Bytes: bytes, Packets: bytes/1400 + 1}
			}
		}
	}
	return &t
}

// A year at 200 clients a minute: how big the file gets with the default
// retention, how long writing it took, and how fast the reports read it.
func BenchmarkYear(b *testing.B) {
	year, err := buildYear(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	st, err := OpenReadOnly(year.path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	lastYear := Query{Since: year.end.AddDate(-1, 0, 0), Until: year.end}
	for _, r := range []struct {
		name string
		read func(ctx context.Context) (int, error)
	}{
		{"report-year", func(ctx context.Context) (int, error) {
			totals, err := allClients(st, ctx, lastYear)
			return len(totals), err
		}},
		{"report-today", func(ctx context.Context) (int, error) {
			totals, err := allClients(st, ctx, Query{Since: year.end.Truncate(24 * time.Hour), Until: year.end})
			return len(totals), err
		}},
		// Local days in a zone off UTC are read from hourly rows: the
		// slowest report there is.
		{"year-by-day-in-Berlin", func(ctx context.Context) (int, error) {
			buckets, err := st.Series(ctx, lastYear, Day, berlin)
			return len(buckets), err
		}},
	} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				if n, err := r.read(b.Context()); err != nil || n == 0 {
					b.Fatal(n, err)
				}
			}
			b.ReportMetric(float64(year.bytes)/(1<<20), "db-MiB")
			b.ReportMetric(year.took.Seconds(), "generate-s")
		})
	}
}

// A sustained flood of forged sources at the defaults: every minute 66,000
// new addresses (1,100 a second) of two full-size frames each, beside 20
// real clients, through the real Aggregator and store for an hour of
// minute flushes with rollups. The forged addresses fold into 'other', so
// the file grows by the real clients' rows; db-MB/day is the hour's growth
// times 24.
func BenchmarkFloodDatabaseGrowth(b *testing.B) {
	const (
		forgedPerMinute = 66_000
		realClients     = 20
		minutes         = 60
	)
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "flood.db")
		st := openPath(b, path)
		clk := &clock{t: t0}
		var n int
		var forged bpfgo.Traffic
		forged[bpfgo.QUIC][bpfgo.Down] = bpfgo.Tally{Bytes: 2 * 1514, Packets: 2}
		d := drainFunc(func() ([]bpfgo.Sample, error) {
			samples := make([]bpfgo.Sample, 0, forgedPerMinute+realClients)
			for range forgedPerMinute {
				n++
				samples = append(samples, bpfgo.Sample{Client: clientAddr(1_000_000 + n), Traffic: forged})
			}
			for i := range realClients {
				samples = append(samples, bpfgo.Sample{Client: clientAddr(i), Traffic: traffic(uint64(i + 10))})
			}
			return samples, nil
		})
		a := NewAggregator(d, st, Config{Log: discard, Now: clk.now, MinClientBytes: DefaultMinClientBytes})
		before := fileSize(b, path)
		for range minutes {
			clk.set(clk.now().Add(time.Minute))
			if err := a.Flush(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		grown := fileSize(b, path) - before
		b.ReportMetric(float64(grown)*24/1e6, "db-MB/day")
	}
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
