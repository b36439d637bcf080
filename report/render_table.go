package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

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
	lines := [][]string{append(keys, "DOWN", "UP", "TOTAL", "RATE")}
	line := func(r *Row, key ...string) {
		lines = append(lines, append(key, amounts(r)...))
	}
	for i := range res.Rows {
		line(&res.Rows[i], res.humanKey(&res.Rows[i])...)
	}
	rest, total := []string{fmt.Sprintf("(%d more)", res.RestClients)}, []string{"total"}
	count := fmt.Sprintf("%d %s", len(res.Rows)+res.RestClients, rankedNouns[res.By])
	switch res.By {
	case ByClient:
		rest = append(rest, "")
		total = append(total, count)
	case ByPrefix:
		// One key column: the count goes beside the word.
		total[0] += ", " + count
	case ByClass:
		// The total of the classes is the total.
		total[0] = "all"
	}
	if res.RestClients > 0 {
		line(&res.Rest, rest...)
	}
	line(&res.Total, total...)
	writeAligned(bw, lines, len(keys))
	for _, q := range res.Quotas {
		fmt.Fprintf(bw, "quota %s: %s of %s (%.0f%%)\n", q.Direction,
			FormatBytes(float64(q.Used)), FormatBytes(float64(q.Limit)), 100*q.Share())
	}
	return bw.Flush()
}

// humanKeys returns the titles of the key columns.
func (res *Result) humanKeys() []string {
	switch res.By {
	case ByClient:
		return []string{"CLIENT", "NAME"}
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
		return []string{r.Client.String(), r.DNS}
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
