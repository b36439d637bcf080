package alert

import (
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// day0 is the first day of every test's history, a Monday; live is when
// the tests' detectors start, after a week of history.
var (
	day0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	live = day0.AddDate(0, 0, 7)
)

var (
	// peers are the host's syncer peers; weights their shares of its
	// consensus traffic.
	peers   = []traffic.Client{clientOf("203.0.113.1"), clientOf("203.0.113.2"), clientOf("203.0.113.3"), clientOf("2001:db8::4")}
	weights = []float64{0.4, 0.3, 0.2, 0.1}
	// renter moves siamux traffic only.
	renter = clientOf("198.51.100.9")
)

func clientOf(s string) traffic.Client {
	return traffic.ClientOf(netip.MustParseAddr(s))
}

var discard = slog.New(slog.DiscardHandler)

// openStore opens a fresh database, closed at the end of the test.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "collector.db"))
}

// openPath opens the database at path, closed at the end of the test. Its
// retention counts from a clock stopped in the tests' time, so that the
// minutes of their history stay.
func openPath(t testing.TB, path string) *store.Store {
	t.Helper()
	now := func() time.Time { return day0.AddDate(0, 0, 10) }
	st, err := store.Open(path, store.Options{Log: discard, LockWait: 50 * time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// history is a database file holding the usual traffic of the week
// before live, written once for all the tests that copy it.
var history struct {
	once sync.Once
	file []byte
	err  error
}

// openHistory returns a database holding the usual traffic of the week
// before live.
func openHistory(t testing.TB) *store.Store {
	t.Helper()
	history.once.Do(func() {
		// Until it is built: a test failing in the middle leaves it so.
		history.err = errors.New("the history database was not built")
		dir, err := os.MkdirTemp("", "alert-history")
		if err != nil {
			history.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "collector.db")
		st, err := store.Open(path, store.Options{Log: discard})
		if err != nil {
			history.err = err
			return
		}
		run(t, st, nil, world{}, day0, live)
		// The last close moves the write-ahead log into the file.
		if history.err = st.Close(); history.err == nil {
			history.file, history.err = os.ReadFile(path)
		}
	})
	if history.err != nil {
		t.Fatal(history.err)
	}
	path := filepath.Join(t.TempDir(), "collector.db")
	if err := os.WriteFile(path, history.file, 0o600); err != nil {
		t.Fatal(err)
	}
	return openPath(t, path)
}

// hostRate is the host's usual consensus rate at t in bytes a second: 20
// kB/s over the day, 60% above it in the afternoon and below at night.
func hostRate(t time.Time) float64 {
	hour := float64(t.Unix()%86400) / 3600
	return 20_000 * (1 + 0.6*math.Sin(2*math.Pi*(hour-8)/24))
}

// noise returns a number in [0, 1) that only t and i decide, so that a
// minute written as history and read back equals the one consumed.
func noise(t time.Time, i int) float64 {
	x := uint64(t.Unix())*0x9e3779b97f4a7c15 + uint64(i+1)*0xbf58476d1ce4e5b9
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// burst adds rate bytes a second of consensus traffic of client from from
// to to.
type burst struct {
	client   traffic.Client
	from, to time.Time
	rate     float64
}

// world makes up a host's traffic: the usual, with bursts on top, and
// upload bytes a minute of siamux by the renter.
type world struct {
	bursts []burst
	upload uint64
}

// consensus returns rate bytes a second over a minute, 70% of them up.
func consensus(rate float64) traffic.Traffic {
	var tr traffic.Traffic
	bytes := uint64(rate * 60)
	tr[traffic.Consensus][traffic.Up] = traffic.Tally{Bytes: bytes * 7 / 10, Packets: bytes / 1000}
	tr[traffic.Consensus][traffic.Down] = traffic.Tally{Bytes: bytes - bytes*7/10, Packets: bytes / 1000}
	return tr
}

// rows returns the rows of the minute m: each peer's share of the host's
// rate, give or take 30%, three times as much every tenth minute (a block
// relayed), the bursts, and the renter.
func (w world) rows(m time.Time) []traffic.Row {
	var out []traffic.Row
	for i, p := range peers {
		rate := hostRate(m) * weights[i] * (0.7 + 0.6*noise(m, i))
		if m.Unix()/60%10 == 0 {
			rate *= 3
		}
		for _, b := range w.bursts {
			if b.client == p && !m.Before(b.from) && m.Before(b.to) {
				rate += b.rate
			}
		}
		out = append(out, traffic.Row{Start: m, Client: p, Traffic: consensus(rate)})
	}
	var siamux traffic.Traffic
	siamux[traffic.Siamux][traffic.Down].Bytes = 50_000
	siamux[traffic.Siamux][traffic.Up].Bytes = 20_000 + w.upload
	return append(out, traffic.Row{Start: m, Client: renter, Traffic: siamux})
}

// run writes the minutes [from, to) of w into st and hands each to d, if
// any, as a closed period, as the aggregator does; it returns the longest
// Consume. The rows are written an hour at a time, which a test on a busy
// machine would otherwise spend most of its time on, and all of them
// before it returns: a detector loaded then reads them all.
func run(t testing.TB, st *store.Store, d *Detector, w world, from, to time.Time) time.Duration {
	t.Helper()
	var (
		longest time.Duration
		batch   []traffic.Row
	)
	write := func() {
		if err := st.Write(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		p := traffic.Period{Start: m, End: m.Add(time.Minute), Rows: w.rows(m)}
		batch = append(batch, p.Rows...)
		if m.Add(time.Minute).Unix()%3600 == 0 {
			write()
		}
		if d == nil {
			continue
		}
		began := time.Now()
		if err := d.Consume(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		longest = max(longest, time.Since(began))
	}
	write()
	return longest
}

// recorder keeps the alerts it is told of.
type recorder struct {
	mu     sync.Mutex
	alerts []Alert
}

func (r *recorder) Notify(a Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
}

func (r *recorder) list() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.alerts)
}

// tee tells every notifier.
type tee []Notifier

func (t tee) Notify(a Alert) {
	for _, n := range t {
		n.Notify(a)
	}
}

// load returns a Detector on st as cfg says, loaded and learned as of now.
func load(t testing.TB, st *store.Store, cfg Config, now time.Time) *Detector {
	t.Helper()
	cfg.Store = st
	if cfg.Log == nil {
		cfg.Log = discard
	}
	cfg.Now = func() time.Time { return now }
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := d.Learn(t.Context()); err != nil {
		t.Fatal(err)
	}
	return d
}

// event is an alert as tests compare them.
type event struct {
	status  Status
	kind    Kind
	subject string
}

// events returns what alerts says, in order.
func events(alerts []Alert) []event {
	var out []event
	for _, a := range alerts {
		out = append(out, event{a.Status, a.Kind, a.Subject})
	}
	return out
}
