// Package report answers operators' questions from the stored traffic:
// collector report sums it per client, class or calendar period over a span
// (today, this month, a billing period, any range), as a table for people or
// as CSV or JSON; collector export streams the raw rows of a table.
//
// Both open the database read-only and read through agg's queries, which
// take no lock, so they run beside the daemon without holding it up.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/agg"
	"github.com/back2basic/collector/bpfgo"
)

const reportAbout = `Sums the stored traffic over a span of time (today unless told otherwise)
per client, class or calendar period. Times are local; rates are averages
over the time each row covers. Where retention has kept only hourly or daily
rows, a span's ends are resolved to whole hours or days.`

// Report runs collector report with args (after the subcommand), writing to
// stdout.
func Report(ctx context.Context, args []string, stdout io.Writer) error {
	if err := report(ctx, args, stdout, env{now: time.Now(), getenv: os.LookupEnv}); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// reportFlags are report's own settings.
type reportFlags struct {
	by, format, period string
	classes            []bpfgo.Class
	top, billingDay    int
}

func report(ctx context.Context, args []string, stdout io.Writer, e env) error {
	c := newCommand("report", reportAbout, stdout, e)
	var f reportFlags
	c.choice(&f.by, "by", "client", "one row per", "client", "class", "hour", "day", "week", "month")
	c.choice(&f.format, "format", "table", "output", "table", "csv", "json")
	c.choice(&f.period, "period", "today", "the span, unless -since is given", periodNames...)
	c.number(&f.top, "top", "only the N busiest clients (default all)", "a number of clients, 0 for all", 0, 1<<30)
	c.number(&f.billingDay, "billing-day", "day of the month billing periods start on; alone it means -period billing", "a day of the month, 1 to 31", 1, 31)
	c.fs.Func("class", "only these classes, comma-separated: consensus, siamux, quic (default all)", func(v string) (err error) {
		f.classes, err = parseClasses(v)
		return err
	})
	if ok, err := c.parse(args); !ok {
		return err
	}
	sp, err := reportSpan(c, &f)
	if err != nil {
		return err
	}
	if f.top > 0 && f.by != "client" {
		return errors.New("-top applies to -by client")
	}
	if f.classes == nil {
		f.classes = allClasses
	}
	st, err := c.open()
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := build(ctx, st, c, sp, &f)
	if err != nil {
		return err
	}
	switch f.format {
	case "csv":
		return res.writeCSV(stdout)
	case "json":
		return res.writeJSON(stdout)
	}
	return res.writeTable(stdout)
}

// reportSpan decides the span from -period, -billing-day, -since and
// -until.
func reportSpan(c *command, f *reportFlags) (span, error) {
	byRange := c.set("since") || c.set("until")
	switch {
	case byRange && (c.set("period") || c.set("billing-day")):
		return span{}, errors.New("-since/-until exclude -period and -billing-day")
	case byRange && !c.since.Before(c.env.now):
		return span{}, fmt.Errorf("-since %s is not in the past", c.since.Format(time.RFC3339))
	case byRange && c.until.IsZero():
		return span{since: c.since, until: c.env.now}, nil
	case byRange:
		return span{since: c.since, until: c.until}, nil
	case c.set("billing-day") && !c.set("period"):
		f.period = "billing"
	case c.set("billing-day") && !strings.HasSuffix(f.period, "billing"):
		return span{}, errors.New("-billing-day applies to -period billing and last-billing")
	}
	return periodSpan(f.period, c.env.now, f.billingDay)
}

var allClasses = []bpfgo.Class{bpfgo.Consensus, bpfgo.Siamux, bpfgo.QUIC}

// parseClasses reads -class: class names, comma-separated, in any order.
func parseClasses(v string) ([]bpfgo.Class, error) {
	var out []bpfgo.Class
	for name := range strings.SplitSeq(v, ",") {
		i := slices.IndexFunc(allClasses, func(c bpfgo.Class) bool { return c.String() == strings.TrimSpace(name) })
		if i < 0 {
			return nil, errors.New("accepted: consensus, siamux, quic, comma-separated")
		}
		if !slices.Contains(out, allClasses[i]) {
			out = append(out, allClasses[i])
		}
	}
	slices.Sort(out)
	return out, nil
}

// result is a report ready to be written in any format.
type result struct {
	period       string // the name of the span, if it is a period
	title        string
	since, until time.Time // until is now for a span still running
	by           string
	classes      []bpfgo.Class
	rows         []row
	rest         row // the clients -top left out, summed; count in restCount
	restCount    int
	total        row
}

// row is one line of a report: its key (which fields depends on -by) and
// the traffic of the chosen classes.
type row struct {
	ip, dns    string    // -by client
	class      string    // -by class
	start, end time.Time // -by a period, and the span a row's rate is over
	traffic    bpfgo.Traffic
}

// build runs the queries of the report and shapes their answer.
func build(ctx context.Context, st *agg.Store, c *command, sp span, f *reportFlags) (*result, error) {
	now := c.env.now
	res := &result{period: sp.period, title: sp.title, since: sp.since, until: minTime(sp.until, now), by: f.by, classes: f.classes}
	// Rows of the minute now is in are stored by then when the daemon
	// flushes more often than once a minute.
	q := c.query(sp.since, minTime(sp.until, now.Truncate(time.Minute).Add(time.Minute)))
	whole := row{start: res.since, end: res.until}
	switch f.by {
	case "client", "class":
		n := f.top
		if f.by == "class" {
			// The classes' totals are the rest of an empty top.
			n = -1
		}
		top, err := st.TopClients(ctx, q, n, f.classes)
		if err != nil {
			return nil, err
		}
		for _, t := range top.Clients {
			r := whole
			r.ip, r.dns, r.traffic = "other", t.DNS, only(t.Traffic, f.classes)
			if !t.Overflow {
				r.ip = t.Client.String()
			}
			res.rows = append(res.rows, r)
		}
		res.rest, res.restCount = whole, top.RestClients
		res.rest.traffic = only(top.Rest, f.classes)
	default:
		buckets, err := st.Series(ctx, q, map[string]agg.Period{"hour": agg.Hour, "day": agg.Day, "week": agg.Week, "month": agg.Month}[f.by], now.Location())
		if err != nil {
			return nil, err
		}
		for _, b := range buckets {
			res.rows = append(res.rows, row{start: b.Start, end: minTime(b.End, now), traffic: only(b.Traffic, f.classes)})
		}
	}
	res.total = whole
	res.total.traffic.Add(&res.rest.traffic)
	for _, r := range res.rows {
		res.total.traffic.Add(&r.traffic)
	}
	if f.by == "class" {
		res.rows, res.rest, res.restCount = nil, row{}, 0
		for _, class := range f.classes {
			r := whole
			r.class, r.traffic = class.String(), only(res.total.traffic, []bpfgo.Class{class})
			res.rows = append(res.rows, r)
		}
	}
	return res, nil
}

// only returns the traffic of t in classes.
func only(t bpfgo.Traffic, classes []bpfgo.Class) bpfgo.Traffic {
	var out bpfgo.Traffic
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
