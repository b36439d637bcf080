package report

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/beside"
	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// Source is the stored traffic a report reads; *store.Store is one.
type Source interface {
	TopClients(ctx context.Context, q store.Query, n int, classes []traffic.Class) (store.Top, error)
	Series(ctx context.Context, q store.Query, p store.Period, loc *time.Location) ([]store.Bucket, error)
}

// PrefixSource is a Source that also sums traffic per network, which a
// report by prefix needs; *store.Store is one. It stands apart so that a
// Source for the other reports need not answer it.
type PrefixSource interface {
	Source
	TopPrefixes(ctx context.Context, q store.Query, n int, classes []traffic.Class) (store.PrefixTop, error)
}

// RoleSource is a Source that also sums traffic per role, which a report
// by role needs; *store.Store is one.
type RoleSource interface {
	Source
	TopRoles(ctx context.Context, q store.Query, classes []traffic.Class) ([]store.RoleTotal, error)
}

// Result is a report ready to be written in any format, or reshaped.
type Result struct {
	// Period and Title are the span's (see Span).
	Period, Title string
	// Since and Until bound the span; Until is Request.Now for a span
	// still running, which ends at spanEnd.
	Since, Until time.Time
	spanEnd      time.Time
	By           By
	// Classes are the classes counted, in order; the others are zero in
	// every row.
	Classes []traffic.Class
	// Rows are the report's lines, keyed as By says.
	Rows []Row
	// Roles is whether the rows of a report by client carry their
	// clients' roles: they do when read from the store.
	Roles bool
	// Rest sums the clients, or prefixes, Request.Top left out,
	// RestClients of them.
	Rest        Row
	RestClients int
	// Total sums Rows and Rest.
	Total Row
	// Quotas are the shares of the billing period's quotas Total uses, in
	// a report of a billing period when quotas are set (WithQuotas).
	Quotas []alert.QuotaUse
	// Egress is what the billing period's egress costs, when
	// Request.Egress asked; nil otherwise.
	Egress *Egress
	// Hostd sets the span's wire bytes, of every client and class, beside
	// hostd's own figures; nil when the source holds none for the span.
	Hostd *beside.Figures
}

// WithQuotas sets the shares of q that a report of a billing period uses,
// and their projections to its end; any other report has none.
func (res *Result) WithQuotas(q alert.Quota) {
	if isBilling(res.Period) {
		res.Quotas = q.UsesAt(&res.Total.Traffic, billing.Period{Start: res.Since, End: res.spanEnd}, res.Until)
	}
}

// Row is one line of a report: its key, which By chooses among Client and
// DNS (and Role), Prefix, Role and Clients, Class, or Start; the time its
// average rate is over; and the traffic of the classes counted.
type Row struct {
	Client traffic.Client
	DNS    string // "" when no name is known
	// Role is the client's role over the span, or the role a report by
	// role sums Clients clients of.
	Role    string
	Clients int
	// Prefix is an IPv4 /24 or IPv6 /48; the zero Prefix stands for
	// traffic.Other.
	Prefix     netip.Prefix
	Class      traffic.Class
	Start, End time.Time
	Traffic    traffic.Traffic
}

// prefixName writes r's Prefix as every format does: the network, or
// "other" as for the client.
func (r *Row) prefixName() string {
	if !r.Prefix.IsValid() {
		return traffic.Other.String()
	}
	return r.Prefix.String()
}

// seriesPeriods are the calendar units of the reports by period.
var seriesPeriods = map[By]store.Period{ByHour: store.Hour, ByDay: store.Day, ByWeek: store.Week, ByMonth: store.Month}

// Build answers req from src, reading with ctx: a ctx done stops the
// reads and fails the report.
func Build(ctx context.Context, src Source, req Request) (*Result, error) {
	req, err := req.normal()
	if err != nil {
		return nil, err
	}
	res, err := build(ctx, src, req)
	if errors.Is(err, store.ErrLimit) {
		return nil, &TooManyRowsError{MaxRows: req.MaxRows, By: req.By}
	}
	return res, err
}

// build answers req, normal, from src.
func build(ctx context.Context, src Source, req Request) (*Result, error) {
	now := req.Now
	res := &Result{
		Period: req.Span.Period, Title: req.Span.Title,
		Since: req.Span.Since, Until: minTime(req.Span.Until, now), spanEnd: req.Span.Until,
		By: req.By, Classes: req.Classes,
	}
	q := store.Query{Since: req.Span.Since, Until: queryEnd(req.Span.Until, now), Clients: req.Clients, Roles: req.Roles, Limit: req.MaxRows}
	whole := Row{Start: res.Since, End: res.Until}
	switch req.By {
	case ByClient, ByClass:
		n := req.Top
		if req.By == ByClass {
			// The classes' totals are the rest of an empty top.
			n = -1
		}
		top, err := src.TopClients(ctx, q, n, req.Classes)
		if err != nil {
			return nil, err
		}
		for _, t := range top.Clients {
			r := whole.with(t.Traffic, req.Classes)
			r.Client, r.DNS, r.Role = t.Client, t.DNS, t.Role
			res.Rows = append(res.Rows, r)
		}
		res.Rest, res.RestClients = whole.with(top.Rest, req.Classes), top.RestClients
		res.Roles = req.By == ByClient
	case ByRole:
		rs, ok := src.(RoleSource)
		if !ok {
			return nil, fmt.Errorf("a report by role needs a source summing per role; %T is not one", src)
		}
		roles, err := rs.TopRoles(ctx, q, req.Classes)
		if err != nil {
			return nil, err
		}
		for _, t := range roles {
			r := whole.with(t.Traffic, req.Classes)
			r.Role, r.Clients = t.Role, t.Clients
			res.Rows = append(res.Rows, r)
		}
	case ByPrefix:
		ps, ok := src.(PrefixSource)
		if !ok {
			return nil, fmt.Errorf("a report by prefix needs a source summing per network; %T is not one", src)
		}
		top, err := ps.TopPrefixes(ctx, q, req.Top, req.Classes)
		if err != nil {
			return nil, err
		}
		for _, t := range top.Prefixes {
			r := whole.with(t.Traffic, req.Classes)
			r.Prefix = t.Prefix
			res.Rows = append(res.Rows, r)
		}
		res.Rest, res.RestClients = whole.with(top.Rest, req.Classes), top.RestPrefixes
	default:
		buckets, err := src.Series(ctx, q, seriesPeriods[req.By], now.Location())
		if err != nil {
			return nil, err
		}
		for _, b := range buckets {
			res.Rows = append(res.Rows, Row{Start: b.Start, End: minTime(b.End, now), Traffic: only(b.Traffic, req.Classes)})
		}
	}
	res.Total = whole
	res.Total.Traffic.Add(&res.Rest.Traffic)
	for _, r := range res.Rows {
		res.Total.Traffic.Add(&r.Traffic)
	}
	if bs, ok := src.(beside.Source); ok {
		f, ok, err := beside.Compare(ctx, bs, res.Since, queryEnd(req.Span.Until, now))
		if err != nil {
			return nil, err
		}
		if ok {
			res.Hostd = &f
		}
	}
	if req.By == ByClass {
		res.Rows, res.Rest, res.RestClients = nil, Row{}, 0
		for _, class := range req.Classes {
			r := whole.with(res.Total.Traffic, []traffic.Class{class})
			r.Class = class
			res.Rows = append(res.Rows, r)
		}
	}
	if req.Egress != nil && isBilling(req.Span.Period) {
		if err := withEgress(ctx, src, req, q, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// queryEnd returns where the query of a span ending at until stops. A
// span reaching now takes the whole minute being counted, whose rows the
// daemon stores before the minute ends when it flushes more often than
// once a minute, or stops: the store counts a row when the middle of its
// minute is in the span, so cut at now, a report in the first half of a
// minute would leave out the traffic just counted, often all there is.
func queryEnd(until, now time.Time) time.Time {
	if until.Before(now) {
		return until
	}
	return now.Truncate(time.Minute).Add(time.Minute)
}

// with returns r with the traffic of t in classes.
func (r Row) with(t traffic.Traffic, classes []traffic.Class) Row {
	r.Traffic = only(t, classes)
	return r
}

// only returns the traffic of t in classes.
func only(t traffic.Traffic, classes []traffic.Class) traffic.Traffic {
	var out traffic.Traffic
	for _, c := range classes {
		out[c] = t[c]
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
