package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/back2basic/collector/cost"
)

var binaryUnits = [...]string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// FormatBytes writes an amount of bytes, or bytes a second, in binary
// units with two decimals: "748 B", "1.46 KiB", "3.00 GiB".
func FormatBytes(v float64) string {
	if v < 1023.995 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " B"
	}
	v, unit := v/1024, 0
	// Compare with what two decimals round to, so that just under a MiB
	// reads "1.00 MiB" rather than "1024.00 KiB".
	for v >= 1023.995 && unit < len(binaryUnits)-1 {
		v /= 1024
		unit++
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + binaryUnits[unit]
}

// formatRate writes bytes over a number of seconds as an average rate.
func formatRate(bytes uint64, seconds float64) string {
	if seconds <= 0 {
		return "-"
	}
	return FormatBytes(float64(bytes)/seconds) + "/s"
}

// formatSpan writes a length of time in days, hours and minutes:
// "2d 3h 5m", "10h 30m", "0m".
func formatSpan(d time.Duration) string {
	d = d.Round(time.Minute)
	var parts []string
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if n := d / u.unit; n > 0 {
			parts = append(parts, fmt.Sprintf("%d%s", n, u.name))
			d -= n * u.unit
		}
	}
	if len(parts) == 0 {
		return "0m"
	}
	return strings.Join(parts, " ")
}

// formatMoney writes an amount of money with two decimals, or "—" when
// it is not known: unknown is never written as 0. A loss that rounds to
// nothing is written 0.00, not -0.00.
func formatMoney(f cost.Figure) string {
	if !f.Known {
		return "—"
	}
	s := strconv.FormatFloat(f.Amount, 'f', 2, 64)
	if s == "-0.00" {
		return "0.00"
	}
	return s
}

var decimalBitUnits = [...]string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"}

// formatBits writes a rate in bits a second in decimal units, as
// providers bill: "950 bit/s", "12.35 Mbit/s".
func formatBits(v float64) string {
	unit := 0
	for v >= 999.995 && unit < len(decimalBitUnits)-1 {
		v /= 1000
		unit++
	}
	if unit == 0 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + decimalBitUnits[0]
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + decimalBitUnits[unit]
}
