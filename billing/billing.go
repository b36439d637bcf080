// Package billing is the operator's billing calendar: the periods a host's
// traffic is billed by, each starting at midnight on the same day of the
// month (BILLING_DAY) in the operator's time zone. The reports, the
// alerts' quotas, the metrics and the API all ask it which period a time
// falls in, so they never disagree about where one ends.
package billing

import (
	"fmt"
	"math"
	"time"
)

// Cycle is a billing calendar: periods that start at midnight on a day of
// the month, in a time zone. A month shorter than the day starts its
// period on its last day (BILLING_DAY 31 starts on February 28 or 29),
// and the month after starts on the day again. The zero Cycle has no
// periods: make one with NewCycle.
type Cycle struct {
	day int
	loc *time.Location
}

// NewCycle returns the cycle whose periods start on day of each month (1
// to 31) at midnight in loc.
func NewCycle(day int, loc *time.Location) (Cycle, error) {
	if day < 1 || day > 31 {
		return Cycle{}, fmt.Errorf("billing day %d: accepted: 1 to 31 (a shorter month starts on its last day)", day)
	}
	if loc == nil {
		return Cycle{}, fmt.Errorf("billing day %d: no time zone", day)
	}
	return Cycle{day: day, loc: loc}, nil
}

// IsZero reports whether c is the zero Cycle, which has no periods.
func (c Cycle) IsZero() bool { return c.day == 0 }

// Day returns the day of the month the periods start on, as set.
func (c Cycle) Day() int { return c.day }

// Period returns the period holding t: the one that started at or before
// t and ends after it. At the boundary itself t is the first instant of
// the new period.
func (c Cycle) Period(t time.Time) Period {
	y, m, _ := t.In(c.loc).Date()
	// The period that began the month before holds t, or one after it
	// does: the one of t's month, or, where a clock change moved the
	// next start back into t's day, the one after that.
	m--
	for !t.Before(c.start(y, m+1)) {
		m++
	}
	return Period{Start: c.start(y, m), End: c.start(y, m+1), cycle: c}
}

// start returns the start of the period that begins in month m of year y;
// time.Date reads a month out of range as one of the year before or
// after. Where a clock change skips that midnight, time.Date picks the
// instant, which may fall on the evening before (America/Asuncion on
// 2017-10-01 gives 23:00 on September 30); the two periods that meet
// there both ask this function, so they meet without a gap.
func (c Cycle) start(y int, m time.Month) time.Time {
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, c.loc).Day()
	return time.Date(y, m, min(c.day, last), 0, 0, 0, 0, c.loc)
}

// Period is one billing period, [Start, End), in its cycle's time zone.
type Period struct {
	Start, End time.Time
	cycle      Cycle
}

// Cycle returns the cycle p belongs to.
func (p Period) Cycle() Cycle { return p.cycle }

// Contains reports whether t is within p: at or after Start, before End.
func (p Period) Contains(t time.Time) bool {
	return !t.Before(p.Start) && t.Before(p.End)
}

// Next returns the period after p, which starts where p ends.
func (p Period) Next() Period { return p.cycle.Period(p.End) }

// Prev returns the period before p, which ends where p starts.
func (p Period) Prev() Period { return p.cycle.Period(p.Start.Add(-time.Nanosecond)) }

// Project returns what the period will have used by its end if it goes on
// as it went: used, what it used from Start to at, at the period's rate
// so far (used over the time passed) over its whole length. At or before
// Start nothing has passed to take a rate from, and at or after End
// nothing remains: both return used. Early in a period one busy hour
// weighs heavily; ProjectionSettles says when a projection is worth
// alerting on.
func (p Period) Project(used uint64, at time.Time) uint64 {
	passed := at.Sub(p.Start)
	if passed <= 0 || !at.Before(p.End) {
		return used
	}
	return uint64(math.Round(float64(used) * float64(p.End.Sub(p.Start)) / float64(passed)))
}

// ProjectionSettles is how much of a period must have passed before its
// projection is alerted on: a whole day, so that a day's rhythm (busy
// evenings, quiet nights) is in the rate, not one busy hour.
const ProjectionSettles = 24 * time.Hour
