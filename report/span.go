package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/back2basic/collector/billing"
)

// Span is the time a report covers, [Since, Until), with the name of its
// period, if it is one, and how the report's title says it.
type Span struct {
	Since, Until time.Time
	// Period is the period's name, one of PeriodNames; "" for a range.
	Period string
	// Title follows "Traffic" in a table's title; "" for a range.
	Title string
}

// periodNames are the period names: a unit of the calendar, this one or the
// one before.
var periodNames = []string{"today", "yesterday", "week", "last-week", "month", "last-month", "billing", "last-billing"}

// PeriodNames returns the names PeriodSpan accepts.
func PeriodNames() []string { return slices.Clone(periodNames) }

// isBilling reports whether the period named name is a billing period,
// whose span depends on the day of the month billing starts on.
func isBilling(name string) bool {
	unit, _ := periodUnit(name)
	return unit == "billing"
}

// periodUnit returns the unit of a period (day, week, month or billing) and
// how many periods before the current one it is.
func periodUnit(name string) (unit string, back int) {
	switch name {
	case "today":
		return "day", 0
	case "yesterday":
		return "day", 1
	}
	if unit, ok := strings.CutPrefix(name, "last-"); ok {
		return unit, 1
	}
	return name, 0
}

// PeriodSpan returns the period named name (one of PeriodNames) holding
// now, or the one before, in now's location; billingDay is the day of the
// month billing periods start on, needed by the billing periods only,
// which the billing package works out.
func PeriodSpan(name string, now time.Time, billingDay int) (Span, error) {
	if !slices.Contains(periodNames, name) {
		return Span{}, fmt.Errorf("period %q: accepted: %s", name, strings.Join(periodNames, ", "))
	}
	unit, back := periodUnit(name)
	if unit == "billing" {
		cycle, err := billing.NewCycle(billingDay, now.Location())
		if err != nil {
			return Span{}, fmt.Errorf("period %s needs a billing day, 1 to 31", name)
		}
		p := cycle.Period(now)
		for range back {
			p = p.Prev()
		}
		return billingSpan(name, p), nil
	}
	start := periodStart(unit, now)
	for range back {
		start = periodStart(unit, start.Add(-time.Nanosecond))
	}
	return Span{Since: start, Until: nextStart(unit, start), Period: name, Title: name}, nil
}

// BillingSpan returns the span of the billing period p, as -period
// billing names it.
func BillingSpan(p billing.Period) Span {
	return billingSpan("billing", p)
}

// billingSpan is the span of p under the period name name.
func billingSpan(name string, p billing.Period) Span {
	return Span{Since: p.Start, Until: p.End, Period: name, Title: fmt.Sprintf("%s (starting on day %d)", name, p.Cycle().Day())}
}

// RangeSpan returns the span from since to until, or to now when until is
// zero.
func RangeSpan(since, until, now time.Time) Span {
	if until.IsZero() {
		until = now
	}
	return Span{Since: since, Until: until}
}

// periodStart returns the start of the calendar period of unit (day,
// week or month) holding t.
func periodStart(unit string, t time.Time) time.Time {
	y, m, d := t.Date()
	switch unit {
	case "day":
		return date(y, m, d, t.Location())
	case "week": // ISO weeks start on Monday
		return date(y, m, d-(int(t.Weekday())+6)%7, t.Location())
	}
	return date(y, m, 1, t.Location())
}

// nextStart returns the start of the calendar period after the one of
// unit starting at start.
func nextStart(unit string, start time.Time) time.Time {
	y, m, d := start.Date()
	switch unit {
	case "day":
		return date(y, m, d+1, start.Location())
	case "week":
		return date(y, m, d+7, start.Location())
	}
	return date(y, m+1, 1, start.Location())
}

func date(y int, m time.Month, d int, loc *time.Location) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// errTime says what ParseSince and ParseUntil accept.
var errTime = errors.New("accepted: a date (2026-03-01), a time ago (7d, 12h, 90m) or an RFC 3339 time (2026-03-01T08:00:00+01:00)")

// ParseSince reads the start of a span relative to now, in now's location:
// a date (its midnight), a time ago (7d, 2w, 12h, 90m) or an RFC 3339
// time.
func ParseSince(v string, now time.Time) (time.Time, error) {
	return parseTime(v, now, false)
}

// ParseUntil reads the end of a span as ParseSince does, except that a
// date means the midnight after it, so that until 2026-03-31 includes that
// day.
func ParseUntil(v string, now time.Time) (time.Time, error) {
	return parseTime(v, now, true)
}

func parseTime(v string, now time.Time, until bool) (time.Time, error) {
	if d, err := time.ParseInLocation(time.DateOnly, v, now.Location()); err == nil {
		if until {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.In(now.Location()), nil
	}
	if ago, err := parseAgo(v); err == nil {
		return now.Add(-ago), nil
	}
	return time.Time{}, errTime
}

// parseAgo reads a duration as Go writes them, or a whole number of days
// (7d) or weeks (2w).
func parseAgo(v string) (time.Duration, error) {
	unit := map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[v[max(len(v)-1, 0):]]
	if unit != 0 {
		n, err := strconv.ParseUint(strings.TrimSpace(v[:len(v)-1]), 10, 16)
		if err == nil && n > uint64(math.MaxInt64/unit) {
			// 65535w would wrap around to 87 years.
			err = errors.New("longer than a time.Duration")
		}
		return time.Duration(n) * unit, err
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	return d, err
}
