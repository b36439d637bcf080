package billing

import (
	"fmt"
	"testing"
	"time"
)

// cycle returns the cycle of day in the zone named zone.
func cycle(t *testing.T, day int, zone string) Cycle {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatalf("load time zone %s: %v", zone, err)
	}
	c, err := NewCycle(day, loc)
	if err != nil {
		t.Fatalf("NewCycle(%d, %s) = %v", day, zone, err)
	}
	return c
}

// at reads an RFC 3339 time.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkPeriod checks that p runs from start to end (RFC 3339) and holds
// what it says it holds.
func checkPeriod(t *testing.T, p Period, start, end string) {
	t.Helper()
	if !p.Start.Equal(at(t, start)) || !p.End.Equal(at(t, end)) {
		t.Errorf("period = [%s, %s), want [%s, %s)", p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339), start, end)
	}
	if !p.Contains(p.Start) || p.Contains(p.End) || p.Contains(p.Start.Add(-time.Nanosecond)) || !p.Contains(p.End.Add(-time.Nanosecond)) {
		t.Errorf("period [%s, %s) does not hold exactly [Start, End)", p.Start, p.End)
	}
}

func TestPeriod(t *testing.T) {
	for _, tt := range []struct {
		name       string
		day        int
		zone       string
		t          string
		start, end string
	}{
		{"day 1, mid-month", 1, "UTC", "2026-03-15T12:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{"day 1, the boundary itself", 1, "UTC", "2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"},
		{"day 1, the instant before the boundary", 1, "UTC", "2026-03-31T23:59:59.999999999Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{"day 1, across the new year", 1, "UTC", "2026-12-31T23:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"day 15, before the day", 15, "UTC", "2026-01-10T00:00:00Z", "2025-12-15T00:00:00Z", "2026-01-15T00:00:00Z"},
		{"day 15, on the day", 15, "UTC", "2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z"},
		// A month shorter than the day starts on its last day, and the
		// month after starts on the day again.
		{"day 31 ends on February 28", 31, "UTC", "2026-02-01T00:00:00Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"day 31 starts on February 28", 31, "UTC", "2026-03-10T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"day 31, the day before April's last", 31, "UTC", "2026-04-29T12:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"},
		{"day 31 on April's last day", 31, "UTC", "2026-04-30T12:00:00Z", "2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"},
		{"day 31 in a leap year", 31, "UTC", "2028-03-01T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"},
		{"day 30 in February", 30, "UTC", "2026-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-30T00:00:00Z"},
		{"day 30 in a leap February", 30, "UTC", "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-30T00:00:00Z"},
		{"day 29 in February", 29, "UTC", "2026-03-01T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-29T00:00:00Z"},
		{"day 29 in a leap February", 29, "UTC", "2028-02-28T23:59:59Z", "2028-01-29T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"day 29 on a leap day", 29, "UTC", "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z"},
		{"day 29, 2100 is no leap year", 29, "UTC", "2100-02-28T00:00:00Z", "2100-02-28T00:00:00Z", "2100-03-29T00:00:00Z"},
		// Midnights of the zone, not of UTC, whatever zone t is in.
		{"Berlin, t in UTC", 1, "Europe/Berlin", "2026-01-31T23:30:00Z", "2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z"},
		// Summer time starts on 2026-03-29 at 02:00: the period that
		// crosses it is an hour short, and ends at midnight CEST.
		{"Berlin across summer time", 15, "Europe/Berlin", "2026-03-29T03:00:00+02:00", "2026-03-15T00:00:00+01:00", "2026-04-15T00:00:00+02:00"},
		{"Berlin, a period starting on the day clocks change", 29, "Europe/Berlin", "2026-04-01T00:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-04-29T00:00:00+02:00"},
		{"Berlin across winter time", 25, "Europe/Berlin", "2026-10-25T02:30:00+01:00", "2026-10-25T00:00:00+02:00", "2026-11-25T00:00:00+01:00"},
		// Clocks went from 00:00 to 01:00 on 2017-10-01: time.Date gives
		// that midnight as 23:00 the evening before, where the period
		// before ends and October's starts.
		{"Asuncion, midnight skipped, before it", 1, "America/Asuncion", "2017-09-30T22:30:00-04:00", "2017-09-01T00:00:00-04:00", "2017-09-30T23:00:00-04:00"},
		{"Asuncion, midnight skipped, after it", 1, "America/Asuncion", "2017-09-30T23:30:00-04:00", "2017-09-30T23:00:00-04:00", "2017-11-01T00:00:00-03:00"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := cycle(t, tt.day, tt.zone).Period(at(t, tt.t))
			checkPeriod(t, p, tt.start, tt.end)
			if !p.Contains(at(t, tt.t)) {
				t.Errorf("Period(%s) does not contain it", tt.t)
			}
			if p.Start.Location().String() != tt.zone {
				t.Errorf("period in %s, want %s", p.Start.Location(), tt.zone)
			}
		})
	}
}

// Next and Prev walk the periods without a gap or an overlap, whatever
// the month's length or the clock changes, and come back to where they
// started.
func TestNextPrev(t *testing.T) {
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/Asuncion", "Australia/Lord_Howe"} {
		for _, day := range []int{1, 15, 28, 29, 30, 31} {
			c := cycle(t, day, zone)
			first := c.Period(at(t, "2015-06-10T12:00:00Z"))
			p := first
			for range 12 * 15 {
				next := p.Next()
				if !next.Start.Equal(p.End) || !next.Start.Before(next.End) {
					t.Fatalf("%s day %d: after [%s, %s) comes [%s, %s)", zone, day, p.Start, p.End, next.Start, next.End)
				}
				if back := next.Prev(); !back.Start.Equal(p.Start) || !back.End.Equal(p.End) {
					t.Fatalf("%s day %d: before [%s, %s) comes [%s, %s), want [%s, %s)", zone, day, next.Start, next.End, back.Start, back.End, p.Start, p.End)
				}
				if got := c.Period(next.Start); !got.Start.Equal(next.Start) {
					t.Fatalf("%s day %d: the period at its own start %s begins at %s", zone, day, next.Start, got.Start)
				}
				// A start off midnight is one a clock change moved.
				if y, m, d := next.Start.Date(); next.Start.Hour() == 0 && d != min(day, time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()) {
					t.Fatalf("%s day %d: a period starts on %s", zone, day, next.Start)
				}
				if next.Cycle() != c {
					t.Fatalf("%s day %d: the next period is of another cycle", zone, day)
				}
				p = next
			}
		}
	}
}

func TestNewCycleRefuses(t *testing.T) {
	for _, day := range []int{-1, 0, 32} {
		if _, err := NewCycle(day, time.UTC); err == nil || err.Error() != fmt.Sprintf("billing day %d: accepted: 1 to 31 (a shorter month starts on its last day)", day) {
			t.Errorf("NewCycle(%d) = %v", day, err)
		}
	}
	if _, err := NewCycle(1, nil); err == nil {
		t.Error("NewCycle without a time zone: no error")
	}
	if !(Cycle{}).IsZero() || cycle(t, 1, "UTC").IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestProject(t *testing.T) {
	// April 2026 in UTC: 30 days, 720 hours.
	p := cycle(t, 1, "UTC").Period(at(t, "2026-04-10T00:00:00Z"))
	for _, tt := range []struct {
		name string
		used uint64
		at   string
		want uint64
	}{
		{"ten days of 30: three times", 1_000, "2026-04-11T00:00:00Z", 3_000},
		{"one day of 30: thirty times", 7_000_000_000, "2026-04-02T00:00:00Z", 210_000_000_000},
		{"nine tenths", 900, "2026-04-28T00:00:00Z", 1_000},
		{"at the start nothing passed", 5, "2026-04-01T00:00:00Z", 5},
		{"at the end nothing remains", 5, "2026-05-01T00:00:00Z", 5},
		{"nothing used", 0, "2026-04-15T00:00:00Z", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Project(tt.used, at(t, tt.at)); got != tt.want {
				t.Errorf("Project(%d, %s) = %d, want %d", tt.used, tt.at, got, tt.want)
			}
		})
	}
}
