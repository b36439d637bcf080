// Package goal prints a benchmark's figure beside the goal it has to meet,
// one line each, which `make bench` collects into one table at its end.
//
// A line reads
//
//	GOAL | <figure> | <before> | <now> | <goal> | met
//
// where before is "-" when the run has nothing to compare with. Figures are
// lower-is-better: costs, sizes and times.
package goal

import (
	"fmt"
	"math"
	"testing"
)

// None is the before of a figure that has no earlier state in the same run.
var None = math.NaN()

// Report prints one figure: what it was before the change in this same run
// (None if there is none), what it is now, and the most it may be, in unit.
// It does not fail the benchmark: speed is reported, not asserted.
func Report(b *testing.B, figure string, before, now float64, unit string, most float64) {
	b.Helper()
	verdict := "met"
	if now > most {
		verdict = "MISSED"
	}
	fmt.Printf("GOAL | %s | %s | %s | <= %s | %s\n", figure, value(before, unit), value(now, unit), value(most, unit), verdict)
}

func value(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.4g %s", v, unit)
}
