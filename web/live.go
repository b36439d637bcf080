package web

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/back2basic/collector/report"
	"github.com/back2basic/collector/traffic"
)

// defaultLiveTop is how many clients /api/v1/live lists unless told.
const defaultLiveTop = 50

func (s *Server) serveLive(w io.Writer, r *http.Request) error {
	q := r.URL.Query()
	if err := acceptOnly(q, "top"); err != nil {
		return err
	}
	v, err := value(q, "top", strconv.Itoa(defaultLiveTop))
	if err != nil {
		return err
	}
	top, err := strconv.Atoi(v)
	if err != nil || top < 0 {
		return badRequest{fmt.Errorf("invalid value %q for parameter top: accepted: a number of clients, 0 for all", v)}
	}
	open, err := s.cfg.Live()
	if err != nil {
		return fmt.Errorf("read the live counters: %w", err)
	}
	now := s.cfg.Now()
	res, err := liveReport(open, now, top, s.maxRows)
	if err != nil {
		return err
	}
	s.name(r.Context(), res.Rows)
	return res.WriteJSON(w, report.Member{Name: "at", Value: now.Format(time.RFC3339)})
}

// name fills in the names known of rows' clients. The names only adorn
// the live counters, so a failure to read them is logged, and the
// counters are served without.
func (s *Server) name(ctx context.Context, rows []report.Row) {
	if s.cfg.Names == nil || len(rows) == 0 {
		return
	}
	clients := make([]traffic.Client, len(rows))
	for i, r := range rows {
		clients[i] = r.Client
	}
	names, err := s.cfg.Names(ctx, clients)
	if err != nil {
		s.log.Warn("live clients shown without their names", "err", err)
		return
	}
	for i := range rows {
		rows[i].DNS = names[rows[i].Client]
	}
}

// liveReport is the report by client of the open period until now, as a
// stored span's would be: clients without bytes left out, the busiest
// first, those past the top (all when top is 0) summed as the rest. A
// report of more than maxRows rows is a bad request.
func liveReport(open traffic.OpenPeriod, now time.Time, top, maxRows int) (*report.Result, error) {
	since := open.Since
	active := slices.DeleteFunc(slices.Clone(open.Samples), func(s traffic.Sample) bool { return s.Traffic.Bytes() == 0 })
	if rows := len(active); rows > maxRows && (top == 0 || top > maxRows) {
		return nil, badRequest{fmt.Errorf("more than %d clients counted since the last flush, the most one answer holds; ask for top=N (N up to %d)", maxRows, maxRows)}
	}
	slices.SortFunc(active, func(a, b traffic.Sample) int {
		return cmp.Or(cmp.Compare(b.Traffic.Bytes(), a.Traffic.Bytes()), a.Client.Compare(b.Client))
	})
	whole := report.Row{Start: since, End: now}
	res := &report.Result{Since: since, Until: now, By: report.ByClient, Classes: traffic.Classes(), Rest: whole, Total: whole}
	for i, s := range active {
		res.Total.Traffic.Add(&s.Traffic)
		if top > 0 && i >= top {
			res.Rest.Traffic.Add(&s.Traffic)
			res.RestClients++
			continue
		}
		row := whole
		row.Client, row.Traffic = s.Client, s.Traffic
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}
