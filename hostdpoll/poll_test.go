package hostdpoll_test

import (
	"log/slog"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/hostd"
	"github.com/back2basic/collector/hostdpoll"
	"github.com/back2basic/collector/internal/testkit/hostdtest"
	"github.com/back2basic/collector/internal/testkit/syncbuf"
	"github.com/back2basic/collector/store"
)

const password = "hostd-api-password"

// t0 is a period boundary; the tests' clock starts a day after it.
var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

// count returns how many times s is in the journal.
func count(log *syncbuf.Buffer, s string) int { return strings.Count(log.String(), s) }

type fixture struct {
	srv    *hostdtest.Server
	st     *store.Store
	poller *hostdpoll.Poller
	log    *syncbuf.Buffer
	now    time.Time
	served int // periods served
}

func newFixture(t *testing.T, v hostdtest.Version, pass string) *fixture {
	t.Helper()
	f := &fixture{srv: hostdtest.Start(t, password, v), log: &syncbuf.Buffer{}, now: t0.Add(24 * time.Hour)}
	st, err := store.Open(filepath.Join(t.TempDir(), "traffic.db"), store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	client, err := hostd.New(f.srv.APIURL(), pass)
	if err != nil {
		t.Fatal(err)
	}
	f.poller = &hostdpoll.Poller{Client: client, Store: st, Log: slog.New(slog.NewTextHandler(f.log, nil)), Timeout: 500 * time.Millisecond, Now: func() time.Time { return f.now }}
	return f
}

// serve adds hostd's running totals up to period n (counted from t0):
// period i moves i*1000 bytes of RHP egress, half that in, a tenth and a
// fifth of it as syncer egress and ingress, and earns 10^18 hastings of
// egress revenue at 10^14 H/B (100 SC/TB): 10^4 bytes paid.
func (f *fixture) serve(n int) {
	price := new(big.Int).Exp(big.NewInt(10), big.NewInt(14), nil)
	for i := f.served; i < n; i++ {
		total := uint64(i*(i+1)/2) * 1000
		revenue := new(big.Int).Mul(big.NewInt(int64(i)), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil))
		f.srv.AddPeriod(hostdtest.Totals{
			Start:           t0.Add(time.Duration(i) * hostd.Period),
			RHP:             hostdtest.Data{Ingress: total / 2, Egress: total},
			Syncer:          hostdtest.Data{Ingress: total / 5, Egress: total / 10},
			PotentialEgress: revenue,
			EgressPrice:     price,
		})
	}
	f.served = max(f.served, n)
}

// index returns the number of the period at t.
func index(t time.Time) int { return int(t.Sub(t0) / hostd.Period) }

func periods(t *testing.T, st *store.Store) []store.HostdFigures {
	t.Helper()
	got, err := st.HostdPeriods(t.Context(), time.Time{}, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPollStoresWhatHostdServed(t *testing.T) {
	f := newFixture(t, hostdtest.V2_10_2, password)
	f.serve(24*12 + 10)
	f.poller.Poll(t.Context())
	got := periods(t, f.st)
	// A day back from now, t0, is the starting point; then every period
	// up to the last final one (it ended more than a minute ago).
	if want := 24*12 - 2; len(got) != want {
		t.Fatalf("%d periods stored, want %d", len(got), want)
	}
	for _, p := range got {
		i := uint64(index(p.Start))
		if p.RHP.Egress != i*1000 || p.RHP.Ingress != i*500 || p.Syncer == nil || *p.Syncer != (store.HostdData{Ingress: i * 200, Egress: i * 100}) ||
			p.PaidEgress == nil || *p.PaidEgress != 10000 || p.EgressPrice != 100 || p.Version != "v2.10.2" || !p.QUIC {
			t.Errorf("period %d: %+v (syncer %v paid %v); want rhp egress %d, paid 10000 at 100 SC/TB", i, p, p.Syncer, p.PaidEgress, i*1000)
		}
	}

	// The next read takes what ended since, from the last period stored.
	f.now = f.now.Add(10 * time.Minute)
	f.poller.Poll(t.Context())
	got = periods(t, f.st)
	if last := got[len(got)-1]; len(got) != 24*12 || last.RHP.Egress != uint64(index(last.Start))*1000 {
		t.Errorf("after the next read: %d periods, the last %+v; want %d", len(got), last, 24*12)
	}
	if n := count(f.log, "level="); n != 0 {
		t.Errorf("a good run logged %d lines:\n%s", n, f.log.String())
	}
}

func TestPollOldHostdStoresRHPOnly(t *testing.T) {
	f := newFixture(t, hostdtest.V2_5_0, password)
	f.serve(24*12 + 20)
	for range 3 {
		f.poller.Poll(t.Context())
		f.now = f.now.Add(5 * time.Minute)
	}
	got := periods(t, f.st)
	if len(got) == 0 {
		t.Fatal("nothing stored")
	}
	for _, p := range got {
		if p.Syncer != nil || p.QUIC || p.Version != "v2.5.0" {
			t.Errorf("period %v of hostd 2.5.0: syncer %v quic %v version %q", p.Start, p.Syncer, p.QUIC, p.Version)
		}
	}
	if n := count(f.log, "hostd has no syncer figures"); n != 1 {
		t.Errorf("logged the missing syncer figures %d times, want once:\n%s", n, f.log.String())
	}
}

// hostd down, refusing the password or stalling past the timeout: one
// line as it starts, one as it ends, and the periods missed are caught up.
func TestPollOutagesLoggedOnceAndCaughtUp(t *testing.T) {
	for _, tt := range []struct {
		name   string
		break_ func(f *fixture)
		mend   func(f *fixture)
	}{
		{"unreachable", func(f *fixture) { f.srv.Fail(http.StatusServiceUnavailable) }, func(f *fixture) { f.srv.Fail(0) }},
		{"stall past the timeout", func(f *fixture) { f.srv.Stall(2 * time.Second) }, func(f *fixture) { f.srv.Stall(0) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, hostdtest.V2_10_2, password)
			f.serve(24*12 + 20)
			f.poller.Poll(t.Context())
			before := len(periods(t, f.st))
			tt.break_(f)
			for range 3 {
				f.now = f.now.Add(5 * time.Minute)
				f.poller.Poll(t.Context())
			}
			if got := len(periods(t, f.st)); got != before {
				t.Errorf("stored %d periods while hostd failed", got-before)
			}
			tt.mend(f)
			f.now = f.now.Add(5 * time.Minute)
			f.poller.Poll(t.Context())
			if got := len(periods(t, f.st)); got != before+4 {
				t.Errorf("caught up %d periods, want 4", got-before)
			}
			if s, e := count(f.log, "cannot read hostd's metrics"), count(f.log, "reading hostd's metrics again"); s != 1 || e != 1 {
				t.Errorf("outage logged %d times as it started and %d as it ended, want once each:\n%s", s, e, f.log.String())
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		f := newFixture(t, hostdtest.V2_10_2, "not-the-password")
		f.serve(24*12 + 20)
		for range 3 {
			f.poller.Poll(t.Context())
			f.now = f.now.Add(5 * time.Minute)
		}
		if n := count(f.log, "HOSTD_API_PASSWORD"); n != 1 || len(periods(t, f.st)) != 0 {
			t.Errorf("a refused password: %d lines naming the setting, %d periods stored; want 1 and 0:\n%s", n, len(periods(t, f.st)), f.log.String())
		}
		if strings.Contains(f.log.String(), "not-the-password") {
			t.Error("the journal holds the password")
		}
	})
}
