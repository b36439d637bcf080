package report

import (
	"testing"

	"github.com/back2basic/collector/cost"
)

func TestFormatMoney(t *testing.T) {
	for _, tt := range []struct {
		f    cost.Figure
		want string
	}{
		{cost.Figure{}, "—"},
		{cost.Known(0), "0.00"},
		{cost.Known(-0.000017), "0.00"},
		{cost.Known(-0.005), "-0.01"},
		{cost.Known(12.345), "12.35"},
	} {
		if got := formatMoney(tt.f); got != tt.want {
			t.Errorf("formatMoney(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}
