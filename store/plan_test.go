package store

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// day0 is a UTC midnight.
var day0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// at returns unix seconds d days, h hours and m minutes after day0.
func at(d, h, m int) int64 {
	return day0.AddDate(0, 0, d).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute).Unix()
}

// show writes a unix time as days, hours and minutes after day0.
func show(t int64) string {
	s := t - day0.Unix()
	return fmt.Sprintf("d%d %02d:%02d", s/86400, s%86400/3600, s%3600/60)
}

func showPieces(pieces []piece) string {
	var b strings.Builder
	for _, p := range pieces {
		fmt.Fprintf(&b, "%s [%s, %s) ", [...]string{"minutes", "hours", "days"}[p.table], show(p.from), show(p.to))
	}
	return strings.TrimSpace(b.String())
}

func TestPlan(t *testing.T) {
	// Rolled up to d5 12:00 (days to d5), everything still kept.
	rolled := horizons{hourlyUntil: at(5, 12, 0), dailyUntil: at(5, 0, 0)}
	// Minute rows kept from d3, hourly rows from d2.
	pruned := rolled
	pruned.minuteSince, pruned.hourlySince = at(3, 0, 0), at(2, 0, 0)
	tests := []struct {
		name     string
		from, to int64
		h        horizons
		want     string
	}{
		{"nothing rolled up", at(1, 10, 0), at(1, 12, 30), horizons{},
			"minutes [d1 10:00, d1 12:30)"},
		{"coarsest first, finer at the ends", at(1, 10, 30), at(5, 13, 15), rolled,
			"minutes [d1 10:30, d1 11:00) hours [d1 11:00, d2 00:00) days [d2 00:00, d5 00:00) hours [d5 00:00, d5 12:00) minutes [d5 12:00, d5 13:15)"},
		{"aligned span in one table", at(2, 0, 0), at(4, 0, 0), rolled,
			"days [d2 00:00, d4 00:00)"},
		{"not rolled up yet", at(5, 12, 0), at(5, 14, 0), rolled,
			"minutes [d5 12:00, d5 14:00)"},
		{"days where only days are kept", at(1, 10, 30), at(5, 13, 15), pruned,
			"days [d1 00:00, d5 00:00) hours [d5 00:00, d5 12:00) minutes [d5 12:00, d5 13:15)"},
		// A day counts when its middle (noon UTC) is in the span.
		{"day after noon left out", at(1, 12, 1), at(1, 23, 0), pruned, ""},
		{"day to noon counted", at(0, 12, 0), at(1, 12, 1), pruned, "days [d0 00:00, d2 00:00)"},
		// An hour counts when its half past is in the span.
		{"hours where only hours are kept", at(2, 10, 20), at(2, 14, 50), pruned,
			"hours [d2 10:00, d2 15:00)"},
		{"hour to its half past left out", at(2, 10, 31), at(2, 11, 30), pruned, ""},
		{"empty span", at(2, 10, 0), at(2, 10, 0), rolled, ""},
		{"reversed span", at(3, 0, 0), at(2, 0, 0), rolled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := showPieces(plan(tt.from, tt.to, tt.h)); got != tt.want {
				t.Errorf("plan:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Spans that meet share no time and leave none out, whatever the tables
// read: cut anywhere, the two parts cover what the whole span covers.
func TestPlanSpansMeet(t *testing.T) {
	h := horizons{hourlyUntil: at(5, 12, 0), dailyUntil: at(5, 0, 0), minuteSince: at(3, 0, 0), hourlySince: at(2, 0, 0)}
	from, to := at(0, 0, 0), at(6, 0, 0)
	want := covered(t, plan(from, to, h))
	if want != to-from {
		t.Fatalf("whole span covers %d s, want %d", want, to-from)
	}
	for cut := from; cut <= to; cut += 7 * 60 {
		if got := covered(t, append(plan(from, cut, h), plan(cut, to, h)...)); got != want {
			t.Fatalf("cut at %s: the two parts cover %d s, the whole span %d", show(cut), got, want)
		}
	}
}

// covered returns the seconds the pieces cover, failing if any two overlap.
func covered(t *testing.T, pieces []piece) int64 {
	t.Helper()
	pieces = slices.Clone(pieces)
	slices.SortFunc(pieces, func(a, b piece) int { return cmp.Compare(a.from, b.from) })
	var n int64
	for i, p := range pieces {
		if i > 0 && p.from < pieces[i-1].to {
			t.Fatalf("pieces overlap: %s", showPieces(pieces))
		}
		n += p.to - p.from
	}
	return n
}
