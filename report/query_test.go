package report

import (
	"io"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// cliRequest returns the Request collector report builds from args before
// it opens the database.
func cliRequest(t *testing.T, args []string) Request {
	t.Helper()
	c, f := newReportCommand(io.Discard, env{now: now}, 0)
	if ok, err := c.parse(args); !ok {
		t.Fatalf("flags %q: %v", args, err)
	}
	req, err := reportRequest(c, f)
	if err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	return req
}

// A query asks what the same flags ask.
func TestParseQueryAsFlags(t *testing.T) {
	for _, args := range []string{
		"",
		"-period yesterday -by day",
		"-since 7d -until 2026-03-03 -class quic,consensus",
		"-since 2026-02-01T00:00:00+01:00 -by month",
		"-billing-day 25",
		"-period last-billing -billing-day 3 -by week",
		"-top 5 -client 2001:db8::42",
		"-by prefix -top 3 -class siamux",
		"-by class -client other -period month",
	} {
		t.Run(args, func(t *testing.T) {
			flags := strings.Fields(args)
			query := url.Values{}
			for i := 0; i < len(flags); i += 2 {
				query.Set(strings.TrimPrefix(flags[i], "-"), flags[i+1])
			}
			got, err := ParseQuery(query, now, 9)
			if err != nil {
				t.Fatal(err)
			}
			if want := cliRequest(t, flags); !reflect.DeepEqual(got, want) {
				t.Errorf("query %s gives\n%+v\nflags %s give\n%+v", query.Encode(), got, args, want)
			}
		})
	}
}

// Without billing-day, a billing period starts on the daemon's day.
func TestParseQueryBillingDay(t *testing.T) {
	got, err := ParseQuery(url.Values{"period": {"last-billing"}}, now, 9)
	if err != nil {
		t.Fatal(err)
	}
	if want := cliRequest(t, []string{"-period", "last-billing", "-billing-day", "9"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseQueryBadInput(t *testing.T) {
	const accepted = "accepted: billing-day, by, class, client, period, role, since, top, until"
	tests := []struct {
		query      string
		billingDay int
		want       string
	}{
		{"nosuch=1", 1, `unknown parameter "nosuch"; ` + accepted},
		{"h=", 1, `unknown parameter "h"; ` + accepted},
		{"format=csv", 1, `parameter "format" is a flag of collector report only; ` + accepted},
		{"sqlite-path=/tmp/x.db", 1, `parameter "sqlite-path" is a flag of collector report only; ` + accepted},
		{"config=/etc/collector.env", 1, `parameter "config" is a flag of collector report only; ` + accepted},
		{"-by=day", 1, `unknown parameter "-by"; ` + accepted},
		{"class=quic&class=siamux", 1, "parameter class given 2 times; it takes one value"},
		{"by=year", 1, `invalid value "year" for parameter by: accepted: client, prefix, role, class, hour, day, week, month`},
		{"since=soon", 1, `invalid value "soon" for parameter since: accepted: a date (2026-03-01), a time ago (7d, 12h, 90m) or an RFC 3339 time (2026-03-01T08:00:00+01:00)`},
		{"top=lots", 1, `invalid value "lots" for parameter top: accepted: a number of rows, 0 for all`},
		{"top=", 1, `invalid value "" for parameter top: accepted: a number of rows, 0 for all`},
		{"class=udp", 1, `invalid value "udp" for parameter class: accepted: consensus, siamux, quic, comma-separated`},
		{"client=300.1.2.3", 1, `invalid value "300.1.2.3" for parameter client: accepted: an IP address, or other`},
		{"billing-day=32", 1, `invalid value "32" for parameter billing-day: accepted: a day of the month, 1 to 31`},
		{"period=fortnight", 1, `invalid value "fortnight" for parameter period: accepted: today, yesterday, week, last-week, month, last-month, billing, last-billing`},
		{"until=2026-03-01", 1, "until needs since"},
		{"since=2026-03-04&until=2026-03-01", 1, "since 2026-03-04T00:00:00+01:00 is not before until 2026-03-02T00:00:00+01:00"},
		{"since=2026-04-01", 1, "since 2026-04-01T00:00:00+02:00 is not in the past"},
		{"since=7d&period=week", 1, "since/until exclude period and billing-day"},
		{"billing-day=3&period=week", 1, "billing-day applies to period billing and last-billing"},
		{"period=billing", 0, "period billing needs billing-day"},
		{"top=3&by=day", 1, "top applies to by client and prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			query, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseQuery(query, now, tt.billingDay)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
