// Package report answers operators' questions from the stored traffic: it
// sums it per client, class or calendar period over a span (today, this
// month, a billing period, any range) and writes the answer as a table for
// people or as CSV or JSON.
//
// A Request gives a Result (Build), whoever asks: collector report, whose
// flags build the Request, or code such as the live table or an API.
// collector export streams the raw rows of a table. Both commands open the
// database read-only and read through the store's queries, which take no
// lock, so they run beside the daemon without holding it up.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/back2basic/collector/traffic"
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
	classes            []traffic.Class
	top, billingDay    int
}

func report(ctx context.Context, args []string, stdout io.Writer, e env) error {
	c := newCommand("report", reportAbout, stdout, e)
	var f reportFlags
	c.choice(&f.by, "by", string(ByClient), "one row per", byNames...)
	c.choice(&f.format, "format", "table", "output", "table", "csv", "json")
	c.choice(&f.period, "period", "today", "the span, unless -since is given", periodNames...)
	c.number(&f.top, "top", "only the N busiest clients (default all)", "a number of clients, 0 for all", 0, 1<<30)
	c.number(&f.billingDay, "billing-day", "day of the month billing periods start on; alone it means -period billing", "a day of the month, 1 to 31", 1, 31)
	c.fs.Func("class", "only these classes, comma-separated: consensus, siamux, quic (default all)", func(v string) (err error) {
		f.classes, err = ParseClasses(v)
		return err
	})
	if ok, err := c.parse(args); !ok {
		return err
	}
	req, err := reportRequest(c, &f)
	if err != nil {
		return err
	}
	st, err := c.open()
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := Build(ctx, st, req)
	if err != nil {
		return err
	}
	switch f.format {
	case "csv":
		return res.WriteCSV(stdout)
	case "json":
		return res.WriteJSON(stdout)
	}
	return res.WriteTable(stdout)
}

// reportRequest turns the parsed flags into the Request they ask, checked
// before the database is opened and in the flags' words.
func reportRequest(c *command, f *reportFlags) (Request, error) {
	sp, err := reportSpan(c, f)
	if err != nil {
		return Request{}, err
	}
	if f.top > 0 && f.by != string(ByClient) {
		return Request{}, errors.New("-top applies to -by client")
	}
	return Request{Span: sp, By: By(f.by), Classes: f.classes, Top: f.top, Clients: c.clients, Now: c.env.now}, nil
}

// reportSpan decides the span from -period, -billing-day, -since and
// -until.
func reportSpan(c *command, f *reportFlags) (Span, error) {
	byRange := c.set("since") || c.set("until")
	switch {
	case byRange && (c.set("period") || c.set("billing-day")):
		return Span{}, errors.New("-since/-until exclude -period and -billing-day")
	case byRange && !c.since.Before(c.env.now):
		return Span{}, fmt.Errorf("-since %s is not in the past", c.since.Format(time.RFC3339))
	case byRange:
		return RangeSpan(c.since, c.until, c.env.now), nil
	case c.set("billing-day") && !c.set("period"):
		f.period = "billing"
	case c.set("billing-day") && !isBilling(f.period):
		return Span{}, errors.New("-billing-day applies to -period billing and last-billing")
	case isBilling(f.period) && !c.set("billing-day"):
		return Span{}, fmt.Errorf("-period %s needs -billing-day", f.period)
	}
	return PeriodSpan(f.period, c.env.now, f.billingDay)
}
