package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/back2basic/collector/bpfgo"
)

const timeLayout = "2006-01-02 15:04 MST"

// writeTable writes the report for people: a title, one line per row with
// bytes in binary units and average rates, and a total.
func (res *result) writeTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	title := "Traffic"
	if res.title != "" {
		title += " " + res.title
	}
	if len(res.classes) < int(bpfgo.NumClasses) {
		names := make([]string, len(res.classes))
		for i, c := range res.classes {
			names[i] = c.String()
		}
		title += ", " + strings.Join(names, " and ") + " only"
	}
	fmt.Fprintf(bw, "%s: %s to %s (%s)\n", title, res.since.Format(timeLayout), res.until.Format(timeLayout), formatSpan(res.until.Sub(res.since)))
	if len(res.rows) == 0 {
		fmt.Fprintln(bw, "no traffic stored in this span")
		return bw.Flush()
	}
	keys := res.humanKeys()
	lines := [][]string{append(keys, "DOWN", "UP", "TOTAL", "RATE")}
	line := func(r row, key ...string) {
		lines = append(lines, append(key, res.amounts(r)...))
	}
	for _, r := range res.rows {
		line(r, res.humanKey(r)...)
	}
	if res.restCount > 0 {
		line(res.rest, fmt.Sprintf("(%d more)", res.restCount), "")
	}
	total := []string{"total"}
	switch res.by {
	case "client":
		total = append(total, fmt.Sprintf("%d clients", len(res.rows)+res.restCount))
	case "class":
		// The total of the classes is the total.
		total[0] = "all"
	}
	line(res.total, total...)
	writeAligned(bw, lines, len(keys))
	return bw.Flush()
}

// humanKeys returns the titles of the key columns.
func (res *result) humanKeys() []string {
	switch res.by {
	case "client":
		return []string{"CLIENT", "NAME"}
	case "class":
		return []string{"CLASS"}
	}
	return []string{strings.ToUpper(res.by)}
}

// humanKey returns the key columns of r.
func (res *result) humanKey(r row) []string {
	switch res.by {
	case "client":
		return []string{r.ip, r.dns}
	case "class":
		return []string{r.class}
	case "hour":
		return []string{r.start.Format("2006-01-02 15:04")}
	case "day":
		return []string{r.start.Format("2006-01-02 Mon")}
	case "week":
		_, week := r.start.ISOWeek()
		return []string{fmt.Sprintf("%s W%02d", r.start.Format("2006-01-02"), week)}
	}
	return []string{r.start.Format("2006-01")}
}

// amounts returns the numbers of r for people.
func (res *result) amounts(r row) []string {
	down, up := directions(&r.traffic)
	return []string{
		formatBytes(float64(down)), formatBytes(float64(up)), formatBytes(float64(down + up)),
		formatRate(down+up, r.end.Sub(r.start).Seconds()),
	}
}

// directions sums t's bytes per direction.
func directions(t *bpfgo.Traffic) (down, up uint64) {
	for c := range t {
		down += t[c][bpfgo.Down].Bytes
		up += t[c][bpfgo.Up].Bytes
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
