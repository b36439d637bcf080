package report

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/golden"
	"github.com/back2basic/collector/internal/testkit/storetest"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// berlin is where the tests' operator lives, and now a Wednesday morning
// there.
var berlin, now = storetest.Berlin, storetest.Now

var (
	renter  = traffic.ClientOf(netip.MustParseAddr("198.51.100.7"))
	peer    = traffic.ClientOf(netip.MustParseAddr("2001:db8::42"))
	unnamed = traffic.ClientOf(netip.MustParseAddr("203.0.113.9"))
)

// event is traffic counted in the minute at.
type event struct {
	at      time.Time
	samples []traffic.Sample
}

// classTraffic returns Traffic with bytes of one class, and a packet per
// KiB.
func classTraffic(c traffic.Class, down, up uint64) traffic.Traffic {
	var t traffic.Traffic
	t[c][traffic.Down] = traffic.Tally{Bytes: down, Packets: down/1024 + 1}
	t[c][traffic.Up] = traffic.Tally{Bytes: up, Packets: up/1024 + 1}
	return t
}

func at(month time.Month, day, hour, minute int) time.Time {
	return time.Date(2026, month, day, hour, minute, 0, 0, berlin)
}

var events = []event{
	{at(2, 20, 12, 0), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 5<<30, 40<<30)},
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 3<<20, 2<<20)},
	}},
	{at(3, 2, 9, 0), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.QUIC, 1<<30, 7<<30)},
		{Client: unnamed, Traffic: classTraffic(traffic.Siamux, 800, 1500)},
	}},
	{at(3, 3, 14, 0), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 300<<20, 2<<30)},
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 12<<20, 9<<20)},
	}},
	{at(3, 3, 23, 30), []traffic.Sample{
		{Client: unnamed, Traffic: classTraffic(traffic.Siamux, 64<<10, 900<<10)},
	}},
	{at(3, 4, 8, 15), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 100<<20, 1<<30)},
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 1<<20, 1<<20)},
		{Client: traffic.Other, Traffic: classTraffic(traffic.QUIC, 10<<10, 20<<10)},
	}},
	{at(3, 4, 9, 45), []traffic.Sample{
		{Client: peer, Traffic: classTraffic(traffic.Consensus, 2<<20, 3<<20)},
		{Client: unnamed, Traffic: classTraffic(traffic.QUIC, 5<<20, 50<<20)},
	}},
	{at(3, 4, 10, 29), []traffic.Sample{
		{Client: renter, Traffic: classTraffic(traffic.Siamux, 1<<20, 10<<20)},
	}},
}

// neighbours share renter's IPv4 /24 and peer's IPv6 /48, for reports by
// prefix.
var neighbours = event{at(3, 4, 10, 0), []traffic.Sample{
	{Client: traffic.ClientOf(netip.MustParseAddr("198.51.100.200")), Traffic: classTraffic(traffic.QUIC, 2<<20, 30<<20)},
	{Client: traffic.ClientOf(netip.MustParseAddr("2001:db8:0:ffff::9")), Traffic: classTraffic(traffic.Siamux, 7<<20, 1<<20)},
}}

// prefixEvents are events with the neighbours, in time order.
func prefixEvents() []event {
	return slices.Insert(slices.Clone(events), len(events)-1, neighbours)
}

// fixture stores events the way the daemon does, as fixtureOf does.
func fixture(t *testing.T) string {
	t.Helper()
	return fixtureOf(t, events)
}

// fixtureOf stores events the way the daemon does and returns the file's
// path (storetest.Fill): the oldest event is read from hourly rows.
func fixtureOf(t *testing.T, events []event) string {
	t.Helper()
	var periods []traffic.Period
	for _, e := range events {
		periods = append(periods, storetest.Minute(e.at, e.samples...))
	}
	return storetest.Fill(t, periods, now,
		traffic.Name{Addr: renter.Addr(), DNS: "renter-a.example", Found: now},
		traffic.Name{Addr: peer.Addr(), DNS: "peer.example", Found: now})
}

func testEnv(path string) env {
	return env{now: now, getenv: func(k string) (string, bool) {
		if k == "SQLITE_PATH" {
			return path, true
		}
		return "", false
	}}
}

// goldenRun is a command whose output a golden file holds.
type goldenRun struct {
	cmd, name, args string
}

// checkGolden runs each command on the database at path and compares its
// output with its golden file.
func checkGolden(t *testing.T, path string, runs []goldenRun) {
	t.Helper()
	for _, tt := range runs {
		t.Run(tt.cmd+" "+tt.name, func(t *testing.T) {
			run := report
			if tt.cmd == "export" {
				run = export
			}
			var out bytes.Buffer
			if err := run(t.Context(), strings.Fields(tt.args), &out, testEnv(path)); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tt.cmd+" "+tt.name, out.String())
		})
	}
}

func TestGolden(t *testing.T) {
	checkGolden(t, fixture(t), []goldenRun{
		{"report", "today", ""},
		{"report", "yesterday", "-period yesterday"},
		{"report", "week by day", "-period week -by day"},
		{"report", "month by class", "-period month -by class"},
		{"report", "last month csv", "-period last-month -format csv"},
		{"report", "billing json", "-billing-day 25 -format json"},
		{"report", "one day by hour siamux", "-since 2026-03-03 -until 2026-03-03 -by hour -class siamux"},
		{"report", "top", "--since 30d --top 1"},
		{"report", "top json", "-since 30d -top 1 -format json"},
		{"report", "one client by week", "-since 2026-02-01 -client 2001:db8::42 -by week"},
		{"report", "other csv", "-client other -format csv"},
		{"report", "consensus and quic json by month", "-since 2026-02-01T00:00:00+01:00 -class quic,consensus -by month -format json"},
		{"report", "nothing stored", "-since 2025-01-01 -until 2025-01-31"},
		{"export", "minutes today", "-since 2026-03-04"},
		{"export", "hours of a day jsonl", "-table hour -since 2026-03-03 -until 2026-03-03 -format jsonl"},
		{"export", "days", "-table day"},
		{"export", "one client", "-table hour -client 198.51.100.7 -since 2026-02-20 -until 2026-02-21"},
	})
}

// By prefix, clients are summed per IPv4 /24 or IPv6 /48, other apart,
// and cut as by client, the rest counting prefixes.
func TestGoldenByPrefix(t *testing.T) {
	checkGolden(t, fixtureOf(t, prefixEvents()), []goldenRun{
		{"report", "by prefix", "-by prefix -since 30d"},
		{"report", "by prefix top", "-by prefix -top 2"},
		{"report", "by prefix top json", "-by prefix -top 2 -format json"},
		{"report", "by prefix csv quic", "-by prefix -period month -class quic -format csv"},
		{"report", "by prefix one client", "-by prefix -client 2001:db8:0:ffff::9"},
	})
}

// roleFixture is fixture with hostd's peers sampled: peer dialled the
// host on 3 March and was dialled on 4 March, renter was dialled once in
// February.
func roleFixture(t *testing.T) string {
	t.Helper()
	path := fixture(t)
	storetest.AddPeers(t, path,
		storetest.PeerSample{At: at(2, 20, 12, 0).Add(40 * time.Second), Peers: map[traffic.Client]store.Peering{renter: {Outbound: true}}},
		storetest.PeerSample{At: at(3, 3, 14, 0).Add(10 * time.Second), Peers: map[traffic.Client]store.Peering{peer: {Inbound: true}}},
		storetest.PeerSample{At: at(3, 4, 8, 15).Add(20 * time.Second), Peers: map[traffic.Client]store.Peering{peer: {Outbound: true}}},
	)
	return path
}

// Roles: per client over the span, summed by role, filtered, and per
// exported row.
func TestGoldenRoles(t *testing.T) {
	checkGolden(t, roleFixture(t), []goldenRun{
		{"report", "by role", "-by role"},
		{"report", "by role 30d json", "-by role -since 30d -format json"},
		{"report", "role renter", "-role renter"},
		{"report", "roles 30d csv", "-since 30d -role peer-in+peer-out+consensus,peer-out+renter -format csv"},
		{"export", "hours with roles", "-table hour -since 2026-03-03 -until 2026-03-03"},
	})
}

func TestBadInput(t *testing.T) {
	path := fixture(t)
	tests := []struct {
		args string
		want string
	}{
		{"-by year", `invalid value "year" for flag -by: accepted: client, prefix, role, class, hour, day, week, month`},
		{"-format xml", `invalid value "xml" for flag -format: accepted: table, csv, json`},
		{"-since soon", `invalid value "soon" for flag -since: accepted: a date (2026-03-01), a time ago (7d, 12h, 90m) or an RFC 3339 time (2026-03-01T08:00:00+01:00)`},
		{"-since 2026-03-01 -until -3h", `invalid value "-3h" for flag -until: accepted: a date`},
		{"-until 2026-03-01", "-until needs -since"},
		{"-since 2026-04-01", "-since 2026-04-01T00:00:00+02:00 is not in the past"},
		{"-since 2026-03-04 -until 2026-03-01", "-since 2026-03-04T00:00:00+01:00 is not before -until 2026-03-02T00:00:00+01:00"},
		{"-period fortnight", `invalid value "fortnight" for flag -period: accepted: today, yesterday, week, last-week, month, last-month, billing, last-billing`},
		{"-period week -since 7d", "-since/-until exclude -period and -billing-day"},
		{"-period billing", "-period billing needs -billing-day"},
		{"-billing-day 32", `invalid value "32" for flag -billing-day: accepted: a day of the month, 1 to 31`},
		{"-billing-day 3 -period week", "-billing-day applies to -period billing and last-billing"},
		{"-top 3 -by day", "-top applies to -by client and prefix"},
		{"-top lots", `invalid value "lots" for flag -top: accepted: a number of rows, 0 for all`},
		{"-class udp", `invalid value "udp" for flag -class: accepted: consensus, siamux, quic, comma-separated`},
		{"-client 300.1.2.3", `invalid value "300.1.2.3" for flag -client: accepted: an IP address, or other`},
		{"-role landlord", `invalid value "landlord" for flag -role: role "landlord": accepted: consensus, renter, consensus+renter, peer-in+consensus,`},
		{"-role renter -by day", "-role applies to -by client and role"},
		{"-nosuch", "flag provided but not defined: -nosuch"},
		{"today", `unexpected argument "today"; everything is a flag, such as -since 7d (-h lists them)`},
		{"-sqlite-path /nonexistent/collector.db", "open /nonexistent/collector.db: no such file (is SQLITE_PATH right, and has the daemon run?)"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			var out bytes.Buffer
			err := report(t.Context(), strings.Fields(tt.args), &out, testEnv(path))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") || out.Len() > 0 {
				t.Errorf("want one line of error and no output; got %q and %q", err, out.String())
			}
		})
	}
	t.Run("export", func(t *testing.T) {
		err := export(t.Context(), []string{"-table", "week"}, &bytes.Buffer{}, testEnv(path))
		if want := `invalid value "week" for flag -table: accepted: minute, hour, day`; err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
	})
}

func TestHelp(t *testing.T) {
	for name, run := range map[string]func(context.Context, []string, *bytes.Buffer) error{
		"report": func(ctx context.Context, args []string, out *bytes.Buffer) error { return Report(ctx, args, out) },
		"export": func(ctx context.Context, args []string, out *bytes.Buffer) error { return Export(ctx, args, out) },
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(t.Context(), []string{"-h"}, &out); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), "usage: collector "+name+" [flags]") || !strings.Contains(out.String(), "-since") {
				t.Errorf("help:\n%s", out.String())
			}
		})
	}
	err := Report(t.Context(), []string{"-by", "year"}, &bytes.Buffer{})
	if err == nil || !strings.HasPrefix(err.Error(), "report: invalid value") {
		t.Errorf("error %v, want it to start with the command", err)
	}
}

// A report runs while the daemon holds the write lock, and does not wait
// for it.
func TestReportBesideWriter(t *testing.T) {
	path := fixture(t)
	db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("DELETE FROM traffic_minute"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var out bytes.Buffer
	if err := report(t.Context(), nil, &out, testEnv(path)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("report took %v beside a writer", took)
	}
	golden.Check(t, "report today", out.String())
}

// A report of a billing period shows the share of each quota set and what
// its egress costs, in the table and in JSON; other periods show neither.
func TestQuotaShares(t *testing.T) {
	path := fixture(t)
	e := testEnv(path)
	e.getenv = func(k string) (string, bool) {
		switch k {
		case "SQLITE_PATH":
			return path, true
		case "QUOTA_UP_BYTES":
			return "2147483648", true // 2 GiB
		case "QUOTA_TOTAL_BYTES":
			return "10737418240", true // 10 GiB
		case "EGRESS_COST_PER_TB":
			return "2.5", true
		case "EGRESS_FREE_BYTES":
			return "1000000000", true
		}
		return "", false
	}
	for _, args := range []string{"-billing-day 25", "-billing-day 25 -format json", "-period today"} {
		var out bytes.Buffer
		if err := report(t.Context(), strings.Fields(args), &out, e); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "report quota "+args, out.String())
	}
}

// hostdFixture is fixture with hostd's periods of today beside it: RHP
// payload somewhat below the wire's, syncer figures, and egress paid for
// part of the RHP egress.
func hostdFixture(t *testing.T) string {
	t.Helper()
	path := fixture(t)
	st, err := store.Open(path, store.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	period := func(at time.Time, rhp, syncer store.HostdData, paid uint64) store.HostdFigures {
		return store.HostdFigures{Start: at, Periods: 1, RHP: rhp, Syncer: &syncer, PaidEgress: &paid, EgressPrice: 250, Version: "v2.10.2", QUIC: true}
	}
	err = st.WriteHostdPeriods(t.Context(), []store.HostdFigures{
		period(at(3, 4, 8, 15), store.HostdData{Ingress: 95 << 20, Egress: 1000 << 20}, store.HostdData{Ingress: 900 << 10, Egress: 950 << 10}, 600<<20),
		period(at(3, 4, 9, 45), store.HostdData{Ingress: 4 << 20, Egress: 48 << 20}, store.HostdData{Ingress: 1800 << 10, Egress: 2900 << 10}, 10<<20),
		// The traffic of 10:29 is after hostd's last period: left out.
		period(at(3, 4, 10, 20), store.HostdData{}, store.HostdData{}, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGoldenBesideHostd(t *testing.T) {
	checkGolden(t, hostdFixture(t), []goldenRun{
		{"report", "beside hostd", ""},
		{"report", "beside hostd json", "-format json -top 1"},
	})
}

// A billing report values egress at the price hostd's periods were stored
// with (the store is the cost's PriceSource).
func TestEgressValuedAtHostdsStoredPrice(t *testing.T) {
	st, err := store.OpenReadOnly(hostdFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	span, err := PeriodSpan("billing", now, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(t.Context(), st, Request{Span: span, Now: now, By: ByClient, Egress: &EgressAsk{Prices: st}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Egress == nil || !res.Egress.PriceSC.Known || res.Egress.PriceSC.Amount != 250 {
		t.Fatalf("egress priced at %+v, want hostd's stored 250 SC/TB", res.Egress)
	}
}
