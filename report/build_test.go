package report

import (
	"bytes"
	"encoding/csv"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/internal/testkit/golden"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// A report reaching now includes the minute being counted, whose rows the
// daemon stores before the minute ends when it flushes more often than
// once a minute or stops, even in the first half of that minute, where the
// store would resolve a span ending at now to the minute before.
func TestSpanIncludesMinuteBeingCounted(t *testing.T) {
	minute := now
	path := filepath.Join(t.TempDir(), "collector.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	moved := classTraffic(traffic.QUIC, 3000, 40000)
	if err := st.Write(t.Context(), []traffic.Row{{Start: minute, Client: renter, Traffic: moved}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range []string{"-since 1h", "-since 1d", "-since 1h -by hour", "-period today", "-by hour"} {
		t.Run(args, func(t *testing.T) {
			e := testEnv(path)
			e.now = minute.Add(20 * time.Second)
			var out bytes.Buffer
			if err := report(t.Context(), append(strings.Fields(args), "-format", "csv"), &out, e); err != nil {
				t.Fatal(err)
			}
			if got, want := csvSum(t, out.String(), "bytes"), moved.Bytes(); got != want {
				t.Errorf("%d bytes reported, want %d:\n%s", got, want, out.String())
			}
		})
	}
}

// csvSum sums column of a report's CSV.
func csvSum(t *testing.T, doc, column string) uint64 {
	t.Helper()
	records, err := csv.NewReader(strings.NewReader(doc)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, name := range records[0] {
		if name == column {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("no column %s in %q", column, records[0])
	}
	var sum uint64
	for _, r := range records[1:] {
		n, err := strconv.ParseUint(r[col], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

func openFixture(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.OpenReadOnly(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Code builds a Request without flags, as the API and the live table do,
// and reads the Result's fields or writes it as collector report would.
func TestBuildFromCode(t *testing.T) {
	st := openFixture(t)
	today, err := PeriodSpan("today", now, 0)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("fields", func(t *testing.T) {
		res, err := Build(t.Context(), st, Request{
			Span:    today,
			By:      ByClient,
			Classes: []traffic.Class{traffic.QUIC, traffic.Siamux, traffic.QUIC},
			Top:     1,
			Now:     now,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Period != "today" || !res.Since.Equal(at(3, 4, 0, 0)) || !res.Until.Equal(now) || res.By != ByClient {
			t.Errorf("span %q %v to %v by %s, want today from midnight to now by client", res.Period, res.Since, res.Until, res.By)
		}
		if want := []traffic.Class{traffic.Siamux, traffic.QUIC}; !slices.Equal(res.Classes, want) {
			t.Errorf("classes %v, want %v", res.Classes, want)
		}
		if len(res.Rows) != 1 {
			t.Fatalf("%d rows, want 1", len(res.Rows))
		}
		r := res.Rows[0]
		want := classTraffic(traffic.Siamux, 100<<20, 1<<30)
		more := classTraffic(traffic.Siamux, 1<<20, 10<<20)
		want.Add(&more)
		if r.Client != renter || r.DNS != "renter-a.example" || r.Traffic != want || !r.Start.Equal(res.Since) || !r.End.Equal(now) {
			t.Errorf("row %+v, want renter-a.example with %v over the span", r, want)
		}
		// The rest: unnamed's QUIC and other's QUIC; peer moved consensus
		// only and is left out.
		rest := classTraffic(traffic.QUIC, 5<<20, 50<<20)
		other := classTraffic(traffic.QUIC, 10<<10, 20<<10)
		rest.Add(&other)
		if res.RestClients != 2 || res.Rest.Traffic != rest {
			t.Errorf("rest of %d clients %v, want 2 with %v", res.RestClients, res.Rest.Traffic, rest)
		}
		total := want
		total.Add(&rest)
		if res.Total.Traffic != total {
			t.Errorf("total %v, want %v", res.Total.Traffic, total)
		}
	})

	t.Run("same as the command", func(t *testing.T) {
		res, err := Build(t.Context(), st, Request{Span: today, By: ByClient, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := res.WriteTable(&out); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, "report today", out.String())
	})

	t.Run("a range to now by class", func(t *testing.T) {
		since, err := ParseSince("2026-03-03", now)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Build(t.Context(), st, Request{Span: RangeSpan(since, time.Time{}, now), By: ByClass, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		var sum traffic.Traffic
		for _, r := range res.Rows {
			names = append(names, r.Class.String())
			sum.Add(&r.Traffic)
		}
		if got := strings.Join(names, ","); got != "consensus,siamux,quic" {
			t.Errorf("rows of classes %s, want consensus,siamux,quic", got)
		}
		if sum != res.Total.Traffic || sum.Bytes() == 0 {
			t.Errorf("classes sum to %v, total %v", sum, res.Total.Traffic)
		}
		if !res.Until.Equal(now) || res.Period != "" {
			t.Errorf("until %v, period %q; want now and none", res.Until, res.Period)
		}
	})
}

// A Request built by code is checked as the flags are.
func TestBadRequest(t *testing.T) {
	today, err := PeriodSpan("today", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"by", Request{Span: today, By: "year"}, `by "year": accepted: client, prefix, role, class, hour, day, week, month`},
		{"top by day", Request{Span: today, By: ByDay, Top: 3}, "top is a number of rows, for a report by client or prefix"},
		{"negative top", Request{Span: today, By: ByClient, Top: -1}, "top is a number of rows, for a report by client or prefix"},
		{"empty span", Request{Span: RangeSpan(now, now, now), By: ByClient}, "span from 2026-03-04T10:30:00+01:00 to 2026-03-04T10:30:00+01:00 is empty"},
		{"class", Request{Span: today, By: ByClient, Classes: []traffic.Class{traffic.NumClasses}}, "no class 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No query runs: a nil Source would panic.
			_, err := Build(t.Context(), nil, tt.req)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	for name, want := range map[string]string{
		"fortnight": `period "fortnight": accepted: today, yesterday, week, last-week, month, last-month, billing, last-billing`,
		"billing":   "period billing needs a billing day, 1 to 31",
	} {
		if _, err := PeriodSpan(name, now, 0); err == nil || err.Error() != want {
			t.Errorf("PeriodSpan(%q): error %v, want %q", name, err, want)
		}
	}
}

// By prefix, every client's traffic lands in one network's row, other in
// its own, and the total is the total by client.
func TestBuildByPrefix(t *testing.T) {
	st, err := store.OpenReadOnly(fixtureOf(t, prefixEvents()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	since, err := ParseSince("30d", now)
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Span: RangeSpan(since, time.Time{}, now), By: ByPrefix, Now: now}
	res, err := Build(t.Context(), st, req)
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for _, r := range res.Rows {
		prefixes = append(prefixes, r.Prefix.String())
	}
	// The zero Prefix is other's.
	if got, want := strings.Join(prefixes, " "), "198.51.100.0/24 203.0.113.0/24 2001:db8::/48 invalid Prefix"; got != want {
		t.Errorf("prefixes %s, want %s", got, want)
	}
	req.By = ByClient
	byClient, err := Build(t.Context(), st, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(byClient.Rows) != 6 || res.Total.Traffic != byClient.Total.Traffic {
		t.Errorf("%d clients with %v in all, by prefix %v", len(byClient.Rows), byClient.Total.Traffic, res.Total.Traffic)
	}

	// A Source without TopPrefixes serves the other reports.
	if _, err = Build(t.Context(), struct{ Source }{st}, req); err != nil {
		t.Fatal(err)
	}
	req.By = ByPrefix
	_, err = Build(t.Context(), struct{ Source }{st}, req)
	if want := "a report by prefix needs a source summing per network; struct { report.Source } is not one"; err == nil || err.Error() != want {
		t.Errorf("by prefix from a plain Source: error %v, want %q", err, want)
	}
}

// A report of more rows than MaxRows is refused, saying how to ask for
// fewer; one of as many is built. The classes, three at most, are not
// counted.
func TestMaxRows(t *testing.T) {
	st, err := store.OpenReadOnly(fixtureOf(t, prefixEvents()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	since := func(v string) Span {
		t.Helper()
		s, err := ParseSince(v, now)
		if err != nil {
			t.Fatal(err)
		}
		return RangeSpan(s, time.Time{}, now)
	}
	tests := []struct {
		name    string
		req     Request
		rows    int
		wantErr string
	}{
		{"clients", Request{Span: since("30d"), By: ByClient, MaxRows: 5}, 0,
			"more than 5 clients in this span, the most one answer holds; ask for top=N (N up to 5), a later since= or client="},
		{"clients of a top past the cap", Request{Span: since("30d"), By: ByClient, Top: 50, MaxRows: 5}, 0,
			"more than 5 clients in this span, the most one answer holds; ask for top=N (N up to 5), a later since= or client="},
		{"clients up to the cap", Request{Span: since("30d"), By: ByClient, MaxRows: 6}, 6, ""},
		{"clients of a top", Request{Span: since("30d"), By: ByClient, Top: 2, MaxRows: 5}, 2, ""},
		{"prefixes", Request{Span: since("30d"), By: ByPrefix, MaxRows: 3}, 0,
			"more than 3 prefixes in this span, the most one answer holds; ask for top=N (N up to 3), a later since= or client="},
		{"hours", Request{Span: since("1990-01-01"), By: ByHour, MaxRows: 10_000}, 0,
			"more than 10000 hours in this span, the most one answer holds; ask for a later since= or by=day"},
		{"days", Request{Span: since("0001-01-01"), By: ByDay, MaxRows: 10_000}, 0,
			"more than 10000 days in this span, the most one answer holds; ask for a later since= or by=week"},
		{"weeks", Request{Span: since("0001-01-01"), By: ByWeek, MaxRows: 10_000}, 0,
			"more than 10000 weeks in this span, the most one answer holds; ask for a later since= or by=month"},
		{"months", Request{Span: since("0001-01-01"), By: ByMonth, MaxRows: 10_000}, 0,
			"more than 10000 months in this span, the most one answer holds; ask for a later since="},
		{"hours up to the cap", Request{Span: since("2d"), By: ByHour, MaxRows: 49}, 49, ""},
		{"classes", Request{Span: since("30d"), By: ByClass, MaxRows: 1}, 3, ""},
		{"negative", Request{Span: since("30d"), By: ByClass, MaxRows: -1}, 0, "MaxRows is a number of rows, 0 for any"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Now = now
			res, err := Build(t.Context(), st, tt.req)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != tt.rows {
				t.Errorf("%d rows, want %d", len(res.Rows), tt.rows)
			}
		})
	}
	_, err = Build(t.Context(), st, Request{Span: since("30d"), By: ByClient, MaxRows: 1, Now: now})
	if tooMany := (*TooManyRowsError)(nil); !errors.As(err, &tooMany) || tooMany.MaxRows != 1 || tooMany.By != ByClient {
		t.Errorf("error %#v, want a *TooManyRowsError of 1 row by client", err)
	}
}
