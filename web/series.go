package web

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/back2basic/collector/report"
)

// seriesSpan is a span /api/v1/series answers: rows rows of by, the last
// the one holding now, so that every row but the last is a whole hour, day,
// week or month. A coarser span is read from coarser rows: the store reads
// each period from the coarsest table that answers it exactly.
type seriesSpan struct {
	name string
	by   report.By
	rows int
}

var seriesSpans = []seriesSpan{
	{"1d", report.ByHour, 24},
	{"7d", report.ByHour, 7 * 24},
	{"1m", report.ByDay, 30},
	{"3m", report.ByDay, 90},
	{"1y", report.ByWeek, 53},
	// Everything stored: the daily rows are kept for ever, and the months
	// before the first with traffic are left out. Ten years bound the
	// query all the same.
	{"all", report.ByMonth, 120},
}

func seriesSpanNames() []string {
	names := make([]string, len(seriesSpans))
	for i, sp := range seriesSpans {
		names[i] = sp.name
	}
	return names
}

// findSeriesSpan returns the span called name.
func findSeriesSpan(name string) (seriesSpan, error) {
	for _, sp := range seriesSpans {
		if sp.name == name {
			return sp, nil
		}
	}
	return seriesSpan{}, badRequest{fmt.Errorf("invalid value %q for parameter span: accepted: %s", name, strings.Join(seriesSpanNames(), ", "))}
}

// since returns the start of the span's first row, in now's calendar.
func (sp seriesSpan) since(now time.Time) time.Time {
	y, m, d := now.Date()
	back := sp.rows - 1
	loc := now.Location()
	switch sp.by {
	case report.ByHour:
		return time.Date(y, m, d, now.Hour(), 0, 0, 0, loc).Add(-time.Duration(back) * time.Hour)
	case report.ByDay:
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case report.ByWeek: // ISO weeks start on Monday
		return time.Date(y, m, d-(int(now.Weekday())+6)%7-7*back, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m-time.Month(back), 1, 0, 0, 0, 0, loc)
}

func (s *Server) serveSeries(w io.Writer, r *http.Request) error {
	q := r.URL.Query()
	if err := acceptOnly(q, "span", "client", "class"); err != nil {
		return err
	}
	name, err := value(q, "span", "1d")
	if err != nil {
		return err
	}
	sp, err := findSeriesSpan(name)
	if err != nil {
		return err
	}
	// The client and the classes are read as collector report reads
	// them; the span and the rows are the series'.
	choice := maps.Clone(q)
	delete(choice, "span")
	now := s.cfg.Now()
	req, err := report.ParseQuery(choice, now, s.cfg.Billing.Day())
	if err != nil {
		return badRequest{err}
	}
	req.Span, req.By = report.RangeSpan(sp.since(now), time.Time{}, now), sp.by
	res, err := s.build(r.Context(), req)
	if err != nil {
		return err
	}
	if sp.name == "all" {
		fromFirstTraffic(res)
	}
	return res.WriteJSON(w, report.Member{Name: "span", Value: sp.name})
}

// fromFirstTraffic drops the rows of res before the first with traffic,
// keeping the last row at least, and starts the report at the first row
// kept.
func fromFirstTraffic(res *report.Result) {
	first := 0
	for first < len(res.Rows)-1 && res.Rows[first].Traffic.IsZero() {
		first++
	}
	res.Rows = res.Rows[first:]
	res.Since = res.Rows[0].Start
	res.Total.Start = res.Since
}
