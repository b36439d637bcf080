package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/dbtest"
	"github.com/back2basic/collector/traffic"
)

// counted returns the time a minute row of truth is counted at: the middle
// of the finest row kept for its time in the history's tables, that row
// being what reads resolve a span to.
func counted(minute int64) int64 {
	h := historyHorizons
	t := Minutes
	switch {
	case minute < h.hourlySince:
		t = Days
	case minute < h.minuteSince:
		t = Hours
	}
	return floorTo(minute, t.step()) + t.step()/2
}

// expectTotals sums truth per client over [from, to) as reads must, for
// the clients given or, when none are, for all.
func expectTotals(truth map[rowKey]traffic.Traffic, from, to int64, clients ...traffic.Client) map[traffic.Client]traffic.Traffic {
	out := make(map[traffic.Client]traffic.Traffic)
	for k, tr := range truth {
		if c := counted(k.start); c >= from && c < to && (len(clients) == 0 || slices.Contains(clients, k.client)) {
			sum := out[k.client]
			sum.Add(&tr)
			out[k.client] = sum
		}
	}
	return out
}

func TestClientTotals(t *testing.T) {
	st := openStore(t)
	truth := buildHistory(t, st)
	spans := []struct {
		name     string
		from, to int64
	}{
		{"everything", 0, 0},
		{"minutes only", at(5, 19, 0), at(5, 19, 45)},
		{"today so far", at(5, 0, 0), at(5, 20, 0)},
		{"rolled up hours and minutes", at(5, 10, 7), at(5, 19, 3)},
		{"every table", at(0, 9, 0), at(5, 19, 3)},
		{"where only days are kept", at(0, 3, 0), at(0, 20, 0)},
		{"where only hours are kept", at(2, 10, 20), at(3, 1, 40)},
		{"across retention zones", at(0, 13, 0), at(4, 0, 30)},
		{"nothing stored", at(9, 0, 0), at(10, 0, 0)},
	}
	for _, sp := range spans {
		t.Run(sp.name, func(t *testing.T) {
			q := Query{Since: time.Unix(sp.from, 0)}
			to := int64(noEnd)
			if sp.to != 0 {
				q.Until, to = time.Unix(sp.to, 0), sp.to
			}
			checkTotals(t, st, q, expectTotals(truth, sp.from, to))
		})
	}
	from, to := at(0, 9, 0), at(5, 19, 3)
	for _, tt := range []struct {
		name    string
		clients []traffic.Client
		stored  int // how many of them the history has in the span
	}{
		// Given as an IPv4-mapped address, a client is still the IPv4 one.
		{"one client", []traffic.Client{traffic.ClientOf(netip.AddrFrom16(oldA.Addr().As16()))}, 1},
		{"other", []traffic.Client{traffic.Other}, 1},
		{"several clients", []traffic.Client{oldA, traffic.Other, oldB}, 3},
		{"a client never seen", []traffic.Client{clientOf("203.0.113.9")}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := Query{Since: time.Unix(from, 0), Until: time.Unix(to, 0), Clients: tt.clients}
			want := expectTotals(truth, from, to, tt.clients...)
			if len(want) != tt.stored {
				t.Fatalf("the history has %d of the clients %v, want %d: the test picks the wrong clients", len(want), tt.clients, tt.stored)
			}
			checkTotals(t, st, q, want)
		})
	}
}

// Series and Rows read only the clients asked for too, Other being one.
func TestQueryClients(t *testing.T) {
	st := openStore(t)
	truth := buildHistory(t, st)
	clients := []traffic.Client{oldB, traffic.Other}

	since, until := time.Unix(at(0, 0, 0), 0), time.Unix(at(5, 20, 0), 0)
	buckets, err := st.Series(t.Context(), Query{Since: since, Until: until, Clients: clients}, Day, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		var want, all traffic.Traffic
		for c, tr := range expectTotals(truth, b.Start.Unix(), b.End.Unix()) {
			if slices.Contains(clients, c) {
				want.Add(&tr)
			}
			all.Add(&tr)
		}
		if want.IsZero() || want == all {
			t.Fatalf("day %v: the clients moved %d of %d bytes: pick clients that moved some, not all", b.Start, want.Bytes(), all.Bytes())
		}
		if b.Traffic != want {
			t.Errorf("day %v: %d bytes, want %d", b.Start, b.Traffic.Bytes(), want.Bytes())
		}
	}

	// Minute rows only, kept whole from minuteSince on.
	from, to := at(4, 0, 0), at(5, 0, 0)
	want := make(map[rowKey]traffic.Traffic)
	for k, tr := range truth {
		if k.start >= from && k.start < to && slices.Contains(clients, k.client) {
			want[k] = tr
		}
	}
	got := readQuery(t, st, Minutes, Query{Since: time.Unix(from, 0), Until: time.Unix(to, 0), Clients: clients})
	dbtest.CheckSame(t, "rows of "+fmt.Sprint(clients), got, want)
}

func checkTotals(t *testing.T, st *Store, q Query, want map[traffic.Client]traffic.Traffic) {
	t.Helper()
	got, err := allClients(st, t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d clients, want %d", len(got), len(want))
	}
	for i, g := range got {
		if w, ok := want[g.Client]; !ok || g.Traffic != w {
			t.Errorf("%s: %+v, want %+v", g.Client, g.Traffic, w)
		}
		if i > 0 && got[i-1].Traffic.Bytes() < g.Traffic.Bytes() {
			t.Errorf("%s is busier than the client before it", g.Client)
		}
	}
}

func TestClientTotalsNames(t *testing.T) {
	st := openStore(t)
	write(t, st, map[rowKey]traffic.Traffic{{60, oldA}: dbtest.Seeded(1), {60, oldB}: dbtest.Seeded(2)})
	if err := st.SaveNames(t.Context(), []traffic.Name{{Addr: oldA.Addr(), DNS: "a.example", Found: time.Unix(60, 0)}}); err != nil {
		t.Fatal(err)
	}
	got, err := allClients(st, t.Context(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[traffic.Client]string{}
	for _, g := range got {
		names[g.Client] = g.DNS
	}
	if want := map[traffic.Client]string{oldA: "a.example", oldB: ""}; !maps.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}

func TestNames(t *testing.T) {
	st := openStore(t)
	v6 := clientOf("2001:db8::7")
	found := time.Unix(60, 0)
	err := st.SaveNames(t.Context(), []traffic.Name{
		{Addr: oldA.Addr(), DNS: "a.example", Found: found},
		{Addr: v6.Addr(), DNS: "six.example", Found: found},
		{Addr: oldB.Addr(), DNS: "", Found: found}, // looked up, no name
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Names(t.Context(), []traffic.Client{oldA, oldB, v6, traffic.Other, clientOf("192.0.2.99")})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[traffic.Client]string{oldA: "a.example", v6: "six.example"}; !maps.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	if got, err := st.Names(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("no clients: %v, %v", got, err)
	}
}

// Readers get the committed rows at once while the writer holds the lock:
// WAL, and read transactions that take no write lock.
func TestReadWhileLocked(t *testing.T) {
	st := openStore(t)
	write(t, st, map[rowKey]traffic.Traffic{{60, oldA}: dbtest.Seeded(1)})
	unlock := dbtest.LockFile(t, st.path)
	defer unlock()
	ro, err := OpenReadOnly(st.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for name, s := range map[string]*Store{"writer": st, "read-only": ro} {
		start := time.Now()
		got, err := allClients(s, t.Context(), Query{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != 1 || got[0].Traffic != dbtest.Seeded(1) {
			t.Errorf("%s: totals = %+v, want one client with dbtest.Seeded(1)", name, got)
		}
		if took := time.Since(start); took >= lockWait {
			t.Errorf("%s: waited %v for the lock", name, took)
		}
	}
}

func TestSeries(t *testing.T) {
	st := openStore(t)
	truth := buildHistory(t, st)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		period   Period
		loc      *time.Location
		from, to int64
	}{
		{Hour, time.UTC, at(4, 22, 10), at(5, 19, 50)},
		{Day, time.UTC, at(0, 0, 0), at(5, 20, 0)},
		{Day, time.FixedZone("UTC-5", -5*3600), at(0, 5, 0), at(5, 20, 0)},
		{Day, kolkata, at(0, 0, 0), at(5, 20, 0)},
		{Hour, kolkata, at(3, 0, 0), at(5, 20, 0)},
		{Week, time.UTC, at(0, 0, 0), at(5, 20, 0)},
		{Week, time.FixedZone("UTC-5", -5*3600), at(0, 3, 0), at(5, 20, 0)},
		{Month, time.FixedZone("UTC+2", 2*3600), at(-3, 0, 0), at(5, 20, 0)},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%s/%s", [...]string{"hour", "day", "week", "month"}[tt.period], tt.loc, show(tt.from))
		t.Run(name, func(t *testing.T) {
			since, until := time.Unix(tt.from, 0), time.Unix(tt.to, 0)
			buckets, err := st.Series(t.Context(), Query{Since: since, Until: until}, tt.period, tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range buckets {
				switch {
				case i == 0 && !b.Start.Equal(since), i == len(buckets)-1 && !b.End.Equal(until):
					t.Errorf("buckets %v to %v, want %v to %v", buckets[0].Start, buckets[len(buckets)-1].End, since, until)
				case i > 0 && !b.Start.Equal(buckets[i-1].End):
					t.Errorf("bucket %d starts at %v, the one before ends at %v", i, b.Start, buckets[i-1].End)
				case b.Start.Location() != tt.loc:
					t.Errorf("bucket %d in %v", i, b.Start.Location())
				}
				var want traffic.Traffic
				for _, tr := range expectTotals(truth, b.Start.Unix(), b.End.Unix()) {
					want.Add(&tr)
				}
				if b.Traffic != want {
					t.Errorf("bucket %v to %v: %d bytes, want %d", b.Start, b.End, b.Traffic.Bytes(), want.Bytes())
				}
			}
		})
	}
}

func TestPeriods(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// The night summer time starts: the day has 23 hours.
	since := time.Date(2026, 3, 28, 22, 30, 0, 0, berlin)
	until := time.Date(2026, 3, 29, 4, 0, 0, 0, berlin)
	var got []string
	hours, err := periods(since, until, Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range hours {
		got = append(got, b.Start.Format("15:04 MST"))
	}
	want := "[22:30 CET 23:00 CET 00:00 CET 01:00 CET 03:00 CEST]"
	if fmt.Sprint(got) != want {
		t.Errorf("hours %v, want %s", got, want)
	}
	for _, tt := range []struct {
		p    Period
		t    time.Time
		want string
	}{
		{Day, time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "2026-03-30 00:00 CEST"},
		{Week, time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), "2026-03-30 00:00 CEST"}, // a Sunday
		{Week, time.Date(2026, 3, 30, 0, 0, 0, 0, berlin), "2026-04-06 00:00 CEST"},  // a Monday
		{Month, time.Date(2026, 12, 31, 23, 0, 0, 0, berlin), "2027-01-01 00:00 CET"},
	} {
		if got := nextPeriod(tt.t, tt.p).Format("2006-01-02 15:04 MST"); got != tt.want {
			t.Errorf("period %d after %v: %s, want %s", tt.p, tt.t, got, tt.want)
		}
	}
}

// TestTopClients: SQLite ranks by the bytes of the chosen classes, cuts at
// n, sums the rest exactly, and leaves out clients with none of those
// bytes; n < 0 lists none and sums them all.
func TestTopClients(t *testing.T) {
	st := openStore(t)
	var consensusOnly, quicOnly traffic.Traffic
	consensusOnly[traffic.Consensus][traffic.Up] = traffic.Tally{Bytes: 30_000, Packets: 20}
	quicOnly[traffic.QUIC][traffic.Down] = traffic.Tally{Bytes: 500, Packets: 1}
	big, small := dbtest.Seeded(9), dbtest.Seeded(1)
	write(t, st, map[rowKey]traffic.Traffic{
		{t0.Unix(), clientOf("192.0.2.1")}:      big,
		{t0.Unix() + 60, clientOf("192.0.2.1")}: small,
		{t0.Unix(), clientOf("192.0.2.2")}:      small,
		{t0.Unix(), clientOf("2001:db8::3")}:    consensusOnly,
		{t0.Unix(), clientOf("192.0.2.4")}:      quicOnly,
		{t0.Unix(), traffic.Other}:              dbtest.Seeded(2),
	})
	q := Query{Since: t0, Until: t0.Add(time.Hour)}

	top, err := st.TopClients(t.Context(), q, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// By all bytes: 192.0.2.1 60,294, 2001:db8::3 30,000, other 12,147,
	// 192.0.2.2 6,147, 192.0.2.4 500.
	rest := dbtest.Sum(2, 1)
	rest.Add(&quicOnly)
	if len(top.Clients) != 2 || top.Clients[0].Client != clientOf("192.0.2.1") || top.Clients[0].Traffic != dbtest.Sum(9, 1) ||
		top.Clients[1].Traffic != consensusOnly || top.RestClients != 3 || top.Rest != rest {
		t.Errorf("top 2 = %+v", top)
	}

	top, err = st.TopClients(t.Context(), q, 10, []traffic.Class{traffic.Consensus})
	if err != nil {
		t.Fatal(err)
	}
	// Ranked by consensus bytes; 192.0.2.4 moved none and is left out.
	var order []string
	for _, c := range top.Clients {
		order = append(order, c.Client.String())
	}
	if want := "2001:db8::3 192.0.2.1 other 192.0.2.2"; strings.Join(order, " ") != want || top.RestClients != 0 {
		t.Errorf("consensus top = %v (rest %d), want %s", order, top.RestClients, want)
	}

	top, err = st.TopClients(t.Context(), q, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := dbtest.Sum(9, 1, 1, 2)
	all.Add(&consensusOnly)
	all.Add(&quicOnly)
	if len(top.Clients) != 0 || top.RestClients != 5 || top.Rest != all {
		t.Errorf("n < 0: %+v, want no client and all of them as the rest", top)
	}
}

// A query's limit refuses an answer of more keys, whatever top is asked,
// and lets one of as many through.
func TestLimit(t *testing.T) {
	st := openStore(t)
	const clients = 5
	want := map[rowKey]traffic.Traffic{}
	for i := range clients {
		want[rowKey{t0.Unix(), clientN(i * 256)}] = dbtest.Seeded(uint64(i + 1)) // a /24 each
	}
	write(t, st, want)
	span := Query{Since: t0, Until: t0.Add(4 * time.Hour)}
	for _, tt := range []struct {
		limit, n int
		err      bool
	}{
		{clients - 1, 0, true},
		{clients - 1, clients + 10, true},
		{clients - 1, clients - 1, false},
		{clients - 1, 2, false},
		{clients, 0, false},
		{clients, clients + 10, false},
		{0, 0, false},
	} {
		t.Run(fmt.Sprintf("limit %d top %d", tt.limit, tt.n), func(t *testing.T) {
			q := span
			q.Limit = tt.limit
			top, err := st.TopClients(t.Context(), q, tt.n, nil)
			prefixes, perr := st.TopPrefixes(t.Context(), q, tt.n, nil)
			for what, err := range map[string]error{"clients": err, "prefixes": perr} {
				if got := errors.Is(err, ErrLimit); got != tt.err || !got && err != nil {
					t.Errorf("%s: error %v, want ErrLimit %v", what, err, tt.err)
				}
			}
			if tt.err {
				return
			}
			listed := min(clients, tt.n)
			if tt.n == 0 {
				listed = clients
			}
			if len(top.Clients) != listed || top.RestClients != clients-listed || len(prefixes.Prefixes) != listed {
				t.Errorf("%d clients and %d more, %d prefixes; want %d and %d more", len(top.Clients), top.RestClients, len(prefixes.Prefixes), listed, clients-listed)
			}
		})
	}
	for _, tt := range []struct {
		limit int
		err   bool
	}{{3, true}, {4, false}, {0, false}} {
		q := span
		q.Limit = tt.limit
		buckets, err := st.Series(t.Context(), q, Hour, time.UTC)
		if got := errors.Is(err, ErrLimit); got != tt.err || !got && err != nil || !tt.err && len(buckets) != 4 {
			t.Errorf("series of 4 hours, limit %d: %d buckets, error %v; want ErrLimit %v", tt.limit, len(buckets), err, tt.err)
		}
	}
}

// A series by day, week or month reads UTC days and moves the hours between
// each local midnight and the nearest UTC one: the same buckets as
// planning each period on its own, over a year of three clients that
// crosses both daylight saving changes, in zones east and west of UTC, a
// quarter and a half hour off it, and past 12 hours off it. The year has
// daily rows only before the hourly retention, hourly rows after, and
// minute rows in its last two days, so every retention edge is crossed too.
func TestSeriesByDaysIsSeriesByPeriod(t *testing.T) {
	st := openStore(t)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(1, 0, -1).Add(10*time.Hour + 30*time.Minute)
	minutesFrom := end.Add(-3 * 24 * time.Hour).Truncate(time.Hour)
	rng := rand.New(rand.NewPCG(3, 4))
	var all []traffic.Row
	for m := start; m.Before(end); {
		step := time.Hour
		if !m.Before(minutesFrom) {
			step = time.Minute
		}
		for i := range 3 {
			all = append(all, traffic.Row{Start: m, Client: clientN(i), Traffic: yearTraffic(rng, int(step/time.Minute))})
		}
		m = m.Add(step)
	}
	if err := st.Write(t.Context(), all); err != nil {
		t.Fatal(err)
	}
	if err := st.maintain(t.Context(), end, end, Retention{Minutes: 48 * time.Hour, Hourly: 200 * 24 * time.Hour}, time.Minute); err != nil {
		t.Fatal(err)
	}
	h, err := readHorizons(t.Context(), st.db)
	if err != nil {
		t.Fatal(err)
	}
	if h.hourlySince <= start.Unix() || h.minuteSince <= minutesFrom.Unix() || h.dailyUntil < end.Add(-24*time.Hour).Unix() {
		t.Fatalf("rollup state %+v: the year should have daily rows only at its start, minute rows deleted but in its last two days, and be rolled up", h)
	}
	spans := []Query{
		{Since: start, Until: end},
		{Since: start.Add(37 * time.Hour), Until: end.Add(-3 * time.Hour)},
		{Since: end.Add(-20 * time.Hour), Until: end},
		{Since: start, Until: end, Clients: []traffic.Client{clientN(1)}},
	}
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []Period{Day, Week, Month} {
			for i, q := range spans {
				t.Run(fmt.Sprintf("%s/%d/%d", zone, p, i), func(t *testing.T) {
					want, err := st.series(t.Context(), q, p, loc, seriesByPeriod)
					if err != nil {
						t.Fatal(err)
					}
					buckets, err := st.Series(t.Context(), q, p, loc)
					if err != nil {
						t.Fatal(err)
					}
					var sum traffic.Traffic
					for j := range buckets {
						sum.Add(&buckets[j].Traffic)
						if buckets[j].Traffic != want[j].Traffic {
							t.Errorf("%v to %v: %d bytes, want %d", buckets[j].Start, buckets[j].End, buckets[j].Traffic.Bytes(), want[j].Traffic.Bytes())
						}
					}
					if sum.IsZero() {
						t.Error("the span holds no traffic")
					}
				})
			}
		}
	}
}
