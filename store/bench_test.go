package store

import (
	"context"
	"flag"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	testgoal "github.com/back2basic/collector/internal/testkit/goal" // store has a type goal
	"github.com/back2basic/collector/traffic"
)

var fullYear = flag.Bool("year.full", false, "write every minute of BenchmarkYear's year (about ten minutes on two cores) instead of hours before its last 15 days")

// yearClients is how many clients are active every minute of the synthetic
// year; a twentieth of them are new each day, the rest stay.
const yearClients = 200

// yearAddr returns the i-th of the year's distinct addresses, half IPv4
// and half IPv6.
func yearAddr(i int) netip.Addr {
	if i%2 == 0 {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// yearDB is a database holding a synthetic year of traffic.
type yearDB struct {
	path  string
	end   time.Time // the year's last minute is just before it
	took  time.Duration
	bytes int64
}

// buildYear writes a year of traffic of yearClients clients a minute
// through Write and maintain, what every Consume calls, with the clock of
// the data: rollups and retention run as they would, a day's rows at a
// time rather than a minute's. Unless -year.full, the days before the last
// 15 are written as one row per client and hour, filed at the hour's
// first minute: by the end retention has deleted their minute rows either
// way, and the hourly and daily rows rolled up from them are the same
// rows.
func buildYear(ctx context.Context, dir string) (*yearDB, error) {
	// It ends at 10:30 on the year's last day, as if now: today has
	// hourly rows to 10:00 and minute rows since.
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	year := &yearDB{path: filepath.Join(dir, "year.db"), end: start.AddDate(1, 0, -1).Add(10*time.Hour + 30*time.Minute)}
	st, err := Open(year.path, Options{Log: slog.New(slog.DiscardHandler)})
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
		var names []traffic.Name
		for i := range yearClients / 20 {
			active[rng.IntN(yearClients)] = next
			if i%2 == 0 {
				addr := yearAddr(next)
				names = append(names, traffic.Name{Addr: addr, DNS: "host-" + addr.String() + ".example.net", Found: day})
			}
			next++
		}
		end := day.AddDate(0, 0, 1)
		if year.end.Before(end) {
			end = year.end
		}
		step := time.Minute
		if !*fullYear && end.Before(year.end.AddDate(0, 0, -15)) {
			step = time.Hour
		}
		rows := make([]traffic.Row, 0, int(24*time.Hour/step)*yearClients)
		for m := day; m.Before(end); m = m.Add(step) {
			for _, c := range active {
				rows = append(rows, traffic.Row{Start: m, Client: traffic.ClientOf(yearAddr(c)), Traffic: yearTraffic(rng, int(step/time.Minute))})
			}
		}
		if err := st.Write(ctx, rows); err != nil {
			return nil, err
		}
		if err := st.SaveNames(ctx, names); err != nil {
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
func yearTraffic(rng *rand.Rand, minutes int) traffic.Traffic {
	var t traffic.Traffic
	for c, scale := range [traffic.NumClasses]uint64{traffic.Consensus: 50_000, traffic.Siamux: 20_000_000, traffic.QUIC: 5_000_000} {
		for d := range t[c] {
			if minutes > 1 || rng.IntN(3) > 0 {
				bytes := rng.Uint64N(scale * uint64(max(minutes*2/3, 1)))
				t[c][d] = traffic.Tally{Bytes: bytes, Packets: bytes/1400 + 1}
			}
		}
	}
	return t
}

// A year at 200 clients a minute: how big the file gets with the default
// retention, how long writing it took, and how fast the reports read it.
func BenchmarkYear(b *testing.B) {
	year, err := buildYear(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	testgoal.Report(b, "a year at 200 clients a minute", testgoal.None, float64(year.bytes)/(1<<20), "MiB", 400)
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
	today := Query{Since: year.end.Truncate(24 * time.Hour), Until: year.end}
	took := make(map[string]float64) // milliseconds a read, by name
	for _, r := range []struct {
		name string
		read func(ctx context.Context) (int, error)
	}{
		{"report-year", func(ctx context.Context) (int, error) {
			top, err := st.TopClients(ctx, lastYear, 0, nil)
			return len(top.Clients), err
		}},
		{"report-today", func(ctx context.Context) (int, error) {
			top, err := st.TopClients(ctx, today, 0, nil)
			return len(top.Clients), err
		}},
		// Local days in a zone off UTC, as each local day planned on its
		// own reads them (24 hourly rows per client and day), and as
		// Series reads them.
		{"year-by-day-in-Berlin-per-period", func(ctx context.Context) (int, error) {
			buckets, err := st.series(ctx, lastYear, Day, berlin, seriesByPeriod)
			return len(buckets), err
		}},
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
			took[r.name] = b.Elapsed().Seconds() * 1000 / float64(b.N)
			b.ReportMetric(float64(year.bytes)/(1<<20), "db-MiB")
			b.ReportMetric(year.took.Seconds(), "generate-s")
		})
	}
	before, ok := took["year-by-day-in-Berlin-per-period"]
	if !ok { // not run: -bench picked the other
		before = testgoal.None
	}
	testgoal.Report(b, "a year by day in a zone that is not UTC", before, took["year-by-day-in-Berlin"], "ms", 150)
}
