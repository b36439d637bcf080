package dashboard_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/traffic"
)

// figure is a number the page shows: its raw value (data-value) and its
// text.
type figure struct {
	Value string `json:"value"`
	Text  string `json:"text"`
}

// row is a table row of the page: its key (data-key) and its figures by
// column (data-field).
type row struct {
	Key    string            `json:"key"`
	Fields map[string]figure `json:"fields"`
}

// readRows returns the rows of the table matching sel, body then footer.
func readRows(t *testing.T, ctx context.Context, sel string) []row {
	t.Helper()
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]row](fmt.Sprintf(`[...document.querySelectorAll(%q)].map((tr) => ({
		key: tr.dataset.key,
		fields: Object.fromEntries([...tr.querySelectorAll('[data-field]')].map((td) => [td.dataset.field, { value: td.dataset.value, text: td.textContent }])),
	}))`, sel+" tr[data-key]")))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return rows
}

// readFigures returns the figures inside the element matching sel, by
// field.
func readFigures(t *testing.T, ctx context.Context, sel string) map[string]figure {
	t.Helper()
	figures, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]figure](fmt.Sprintf(`Object.fromEntries([...document.querySelectorAll(%q)].map((e) => [e.dataset.field, { value: e.dataset.value, text: e.textContent }]))`,
		sel+" [data-field]")))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return figures
}

// keyed returns rows by key.
func keyed(rows []row) map[string]row {
	out := map[string]row{}
	for _, r := range rows {
		out[r.Key] = r
	}
	return out
}

// checkBytes checks that f shows want bytes, raw and as a person reads
// them.
func checkBytes(t *testing.T, where string, f figure, want uint64) {
	t.Helper()
	if f.Value != strconv.FormatUint(want, 10) || f.Text != report.FormatBytes(float64(want)) {
		t.Errorf("%s: shows %q (value %s), want %q (%d)", where, f.Text, f.Value, report.FormatBytes(float64(want)), want)
	}
}

// checkRate checks that f shows bytes over seconds as a rate.
func checkRate(t *testing.T, where string, f figure, bytes uint64, seconds float64) {
	t.Helper()
	want := float64(bytes) / seconds
	got, err := strconv.ParseFloat(f.Value, 64)
	if err != nil || math.Abs(got-want) > 1e-9*want || f.Text != report.FormatBytes(want)+"/s" {
		t.Errorf("%s: shows %q (value %s), want %q (%g)", where, f.Text, f.Value, report.FormatBytes(want)+"/s", want)
	}
}

// checkTraffic checks a row's bytes down, up and both against t.
func checkTraffic(t *testing.T, where string, r row, want traffic.Traffic) {
	t.Helper()
	down, up := direction(want, traffic.Down), direction(want, traffic.Up)
	checkBytes(t, where+" down", r.Fields["bytes_down"], down)
	checkBytes(t, where+" up", r.Fields["bytes_up"], up)
	if f, ok := r.Fields["bytes"]; ok {
		checkBytes(t, where+" total", f, down+up)
	}
}

// direction sums the bytes of every class in direction d.
func direction(t traffic.Traffic, d traffic.Direction) uint64 {
	var n uint64
	for c := range t {
		n += t[c][d].Bytes
	}
	return n
}
