package report

import (
	"testing"

	"github.com/back2basic/collector/billing"
)

// The billing span the daemon and the API ask for, BillingSpan of the
// calendar's period, is the one -period billing reports, and
// -period last-billing is the period before it.
func TestBillingSpan(t *testing.T) {
	for _, day := range []int{1, 2, 15, 31} {
		cycle, err := billing.NewCycle(day, now.Location())
		if err != nil {
			t.Fatal(err)
		}
		p := cycle.Period(now)
		this, err := PeriodSpan("billing", now, day)
		if err != nil {
			t.Fatal(err)
		}
		if got := BillingSpan(p); got != this {
			t.Errorf("day %d: BillingSpan = %+v, want -period billing's %+v", day, got, this)
		}
		last, err := PeriodSpan("last-billing", now, day)
		if err != nil {
			t.Fatal(err)
		}
		before := p.Prev()
		if !last.Since.Equal(before.Start) || !last.Until.Equal(before.End) || !last.Until.Equal(this.Since) {
			t.Errorf("day %d: -period last-billing is [%s, %s), want [%s, %s), ending where billing starts", day, last.Since, last.Until, before.Start, before.End)
		}
	}
}
