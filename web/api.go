package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/report"
)

// apiRoot is where the API's endpoints are, and its index.
const apiRoot = "/api/v1/"

// defaultTop is how many clients /api/v1/top lists unless told.
const defaultTop = 20

// endpoint is one path of the API, as its index describes it.
type endpoint struct {
	Path       string `json:"path"`
	Parameters string `json:"parameters"`
	About      string `json:"about"`
	serve      func(w io.Writer, r *http.Request) error
}

// endpoints returns the API's endpoints but the index, in the order the
// index lists them.
func (s *Server) endpoints() []endpoint {
	eps := []endpoint{
		{apiRoot + "report", "collector report's flags without the dash, as in period=month&by=day",
			"what collector report -format json writes for the same flags; billing-day defaults to BILLING_DAY", s.serveReport},
		{apiRoot + "top", "as report; by defaults to client, top to 20", "the busiest clients (or prefixes) over a span", s.serveTop},
		{apiRoot + "series", "span (" + strings.Join(seriesSpanNames(), ", ") + "; default 1d), client, class",
			"the traffic over a span ending now, by hour (1d, 7d), day (1m, 3m), week (1y) or month (all); the report by period with the span's name", s.serveSeries},
		{apiRoot + "billing", "none", "this billing period's traffic per class, the period starting on BILLING_DAY, and what its egress costs (egress)", s.serveBilling},
	}
	if s.cfg.Alerts != nil {
		eps = append(eps, endpoint{apiRoot + "alerts", "none",
			"the alerts firing now, as the webhook posts them, and each quota's use of this billing period and its projection to the period's end", s.serveAlerts})
	}
	if s.cfg.Live != nil {
		eps = append(eps, endpoint{apiRoot + "live", "top (default 50, 0 for all)",
			"what the kernel counted since the last flush, not yet stored: the report by client from then to now", s.serveLive})
	}
	return eps
}

// serveIndex lists eps.
func serveIndex(eps []endpoint) func(w io.Writer, r *http.Request) error {
	return func(w io.Writer, r *http.Request) error {
		if err := acceptOnly(r.URL.Query()); err != nil {
			return err
		}
		return encode(w, struct {
			Endpoints []endpoint `json:"endpoints"`
		}{eps})
	}
}

func (s *Server) serveReport(w io.Writer, r *http.Request) error {
	return s.report(r.Context(), w, r.URL.Query())
}

func (s *Server) serveTop(w io.Writer, r *http.Request) error {
	q := r.URL.Query()
	if !q.Has("by") {
		q.Set("by", string(report.ByClient))
	}
	if !q.Has("top") {
		q.Set("top", strconv.Itoa(defaultTop))
	}
	return s.report(r.Context(), w, q)
}

// report answers the report the parameters q ask for, as collector report
// reads them.
func (s *Server) report(ctx context.Context, w io.Writer, q url.Values) error {
	req, err := report.ParseQuery(q, s.cfg.Now(), s.cfg.Billing.Day())
	if err != nil {
		return badRequest{err}
	}
	res, err := s.build(ctx, req)
	if err != nil {
		return err
	}
	return res.WriteJSON(w)
}

// build answers req from the stored traffic, with no more than s.maxRows
// rows: a larger report is a bad request, whose error says how to ask for
// less.
func (s *Server) build(ctx context.Context, req report.Request) (*report.Result, error) {
	req.MaxRows = s.maxRows
	req.Egress = s.cfg.Egress
	res, err := report.Build(ctx, s.cfg.Reports, req)
	if tooMany := (*report.TooManyRowsError)(nil); errors.As(err, &tooMany) {
		return nil, badRequest{err}
	}
	return res, err
}

func (s *Server) serveBilling(w io.Writer, r *http.Request) error {
	if err := acceptOnly(r.URL.Query()); err != nil {
		return err
	}
	now := s.cfg.Now()
	span := report.BillingSpan(s.cfg.Billing.Period(now))
	res, err := s.build(r.Context(), report.Request{Span: span, By: report.ByClass, Now: now})
	if err != nil {
		return err
	}
	return res.WriteJSON(w)
}

// serveAlerts answers the alerts firing and the quotas' use, from the
// daemon's memory: no database is read.
func (s *Server) serveAlerts(w io.Writer, r *http.Request) error {
	if err := acceptOnly(r.URL.Query()); err != nil {
		return err
	}
	active := s.cfg.Alerts()
	if active == nil {
		active = []alert.Alert{}
	}
	var uses []alert.QuotaUse
	if s.cfg.Quotas != nil {
		uses = s.cfg.Quotas()
	}
	return encode(w, struct {
		Active []alert.Alert       `json:"active"`
		Quotas []report.QuotaShare `json:"quotas"`
	}{active, report.QuotaShares(uses)})
}

// encode writes v as indented JSON, as the reports are, with <, > and &
// as they are: the answers are never HTML.
func encode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// acceptOnly refuses the parameters of q that are not names, the first
// in order, so that of several the same one is named.
func acceptOnly(q url.Values, names ...string) error {
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if slices.Contains(names, name) {
			continue
		}
		if len(names) == 0 {
			return badRequest{fmt.Errorf("unknown parameter %q; this endpoint takes none", name)}
		}
		return badRequest{fmt.Errorf("unknown parameter %q; accepted: %s", name, strings.Join(names, ", "))}
	}
	return nil
}

// value returns the one value of the parameter name in q, or def when q
// has none.
func value(q url.Values, name, def string) (string, error) {
	switch v := q[name]; len(v) {
	case 0:
		return def, nil
	case 1:
		return v[0], nil
	default:
		return "", badRequest{fmt.Errorf("parameter %s given %d times; it takes one value", name, len(v))}
	}
}
