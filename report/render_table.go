package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/traffic"
)

const timeLayout = "2006-01-02 15:04 MST"

// WriteTable writes the report for people: a title, one line per row with
// bytes in binary units and average rates, and a total.
func (res *Result) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	title := "Traffic"
	if res.Title != "" {
		title += " " + res.Title
	}
	if len(res.Classes) < int(traffic.NumClasses) {
		title += ", " + strings.Join(classNames(res.Classes), " and ") + " only"
	}
	fmt.Fprintf(bw, "%s: %s to %s (%s)\n", title, res.Since.Format(timeLayout), res.Until.Format(timeLayout), formatSpan(res.Until.Sub(res.Since)))
	if len(res.Rows) == 0 {
		fmt.Fprintln(bw, "no traffic stored in this span")
		return bw.Flush()
	}
	keys := res.humanKeys()
	head := append(keys, "DOWN", "UP", "TOTAL", "RATE")
	costs := res.Egress != nil && res.Egress.priced()
	if costs {
		head = append(head, "COST", "VALUE SC", "MARGIN")
	}
	lines := [][]string{head}
	line := func(r *Row, key ...string) {
		l := append(key, amounts(r)...)
		if costs {
			c := res.Egress.RowCost(r)
			l = append(l, formatMoney(cost.Known(c.Cost)), formatMoney(c.Worth.ValueSC), formatMoney(c.Worth.Margin))
		}
		lines = append(lines, l)
	}
	for i := range res.Rows {
		line(&res.Rows[i], res.humanKey(&res.Rows[i])...)
	}
	rest, total := []string{fmt.Sprintf("(%d more)", res.RestClients)}, []string{"total"}
	count := fmt.Sprintf("%d %s", len(res.Rows)+res.RestClients, rankedNouns[res.By])
	switch res.By {
	case ByClient:
		total = append(total, count)
	case ByPrefix:
		// One key column: the count goes beside the word.
		total[0] += ", " + count
	case ByClass:
		// The total of the classes is the total.
		total[0] = "all"
	case ByRole:
		clients := 0
		for _, r := range res.Rows {
			clients += r.Clients
		}
		total = append(total, fmt.Sprint(clients))
	}
	// Every line has a cell for each key column.
	for len(rest) < len(keys) {
		rest = append(rest, "")
	}
	for len(total) < len(keys) {
		total = append(total, "")
	}
	if res.RestClients > 0 {
		line(&res.Rest, rest...)
	}
	line(&res.Total, total...)
	writeAligned(bw, lines, len(keys))
	for _, q := range res.Quotas {
		fmt.Fprintf(bw, "quota %s: %s of %s (%.0f%%), projected %s (%.0f%%)\n", q.Direction,
			FormatBytes(float64(q.Used)), FormatBytes(float64(q.Limit)), 100*q.Share(),
			FormatBytes(float64(q.Projected)), 100*q.ProjectedShare())
	}
	if res.Egress != nil {
		res.Egress.writeTable(bw)
	}
	if res.Hostd != nil {
		writeBesideHostd(bw, res.Hostd)
	}
	return bw.Flush()
}

// writeTable writes the lines under a billing period's table: the bill,
// hostd's price, the 95th percentile and the projection.
func (e *Egress) writeTable(w io.Writer) {
	b := e.Bill
	if e.Pricing.Set() {
		fmt.Fprintf(w, "egress: %s sent, %s free, %s billed at %s per TB: cost %s\n",
			FormatBytes(float64(b.HostBytes)), FormatBytes(float64(b.FreeBytes)), FormatBytes(float64(b.BillableBytes)),
			strconv.FormatFloat(e.Pricing.PerTB, 'f', -1, 64), formatMoney(cost.Known(b.Cost)))
	} else {
		fmt.Fprintf(w, "egress: %s sent; no EGRESS_COST_PER_TB set\n", FormatBytes(float64(b.HostBytes)))
	}
	fmt.Fprintf(w, "at hostd's egress price of %s SC per TB: value %s SC, margin %s\n",
		formatMoney(e.PriceSC), formatMoney(e.Worth.ValueSC), formatMoney(e.Worth.Margin))
	if e.Samples == 0 {
		fmt.Fprintln(w, "95th percentile: no 5-minute samples stored in this span")
	} else {
		fmt.Fprintf(w, "95th percentile: %s over %d 5-minute samples from %s to %s\n",
			formatBits(e.Percentile95), e.Samples, e.SampledFrom.Format(timeLayout), e.SampledTo.Format(timeLayout))
	}
	fmt.Fprintf(w, "projected to %s: down %s, up %s, total %s, cost %s\n", e.ProjectedAt.Format(timeLayout),
		FormatBytes(float64(e.ProjectedDown)), FormatBytes(float64(e.ProjectedUp)), FormatBytes(float64(e.ProjectedTotal)),
		formatMoney(cost.Known(e.ProjectedCost)))
}

// humanKeys returns the titles of the key columns.
func (res *Result) humanKeys() []string {
	switch res.By {
	case ByClient:
		if res.Roles {
			return []string{"CLIENT", "NAME", "ROLE"}
		}
		return []string{"CLIENT", "NAME"}
	case ByRole:
		return []string{"ROLE", "CLIENTS"}
	case ByPrefix:
		return []string{"PREFIX"}
	case ByClass:
		return []string{"CLASS"}
	}
	return []string{strings.ToUpper(string(res.By))}
}

// humanKey returns the key columns of r.
func (res *Result) humanKey(r *Row) []string {
	switch res.By {
	case ByClient:
		if res.Roles {
			return []string{r.Client.String(), r.DNS, r.Role}
		}
		return []string{r.Client.String(), r.DNS}
	case ByRole:
		return []string{r.Role, fmt.Sprint(r.Clients)}
	case ByPrefix:
		return []string{r.prefixName()}
	case ByClass:
		return []string{r.Class.String()}
	case ByHour:
		return []string{r.Start.Format("2006-01-02 15:04")}
	case ByDay:
		return []string{r.Start.Format("2006-01-02 Mon")}
	case ByWeek:
		_, week := r.Start.ISOWeek()
		return []string{fmt.Sprintf("%s W%02d", r.Start.Format("2006-01-02"), week)}
	}
	return []string{r.Start.Format("2006-01")}
}

// amounts returns the numbers of r for people.
func amounts(r *Row) []string {
	down, up := directions(&r.Traffic)
	return []string{
		FormatBytes(float64(down)), FormatBytes(float64(up)), FormatBytes(float64(down + up)),
		formatRate(down+up, r.End.Sub(r.Start).Seconds()),
	}
}

// directions sums t's bytes per direction.
func directions(t *traffic.Traffic) (down, up uint64) {
	for c := range t {
		down += t[c][traffic.Down].Bytes
		up += t[c][traffic.Up].Bytes
	}
	return down, up
}

// writeAligned writes lines as columns two spaces apart, the first left
// columns aligned left and the rest, numbers, aligned right.
func writeAligned(w io.Writer, lines [][]string, left int) {
	widths := make([]int, len(lines[0]))
	for _, l := range lines {
		for i, cell := range l {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, l := range lines {
		var b strings.Builder
		for i, cell := range l {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < left {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
