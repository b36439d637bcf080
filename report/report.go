// Package report answers operators' questions from the stored traffic: it
// sums it per client, network, class or calendar period over a span
// (today, this month, a billing period, any range) and writes the answer as
// a table for people or as CSV or JSON.
//
// A Request gives a Result (Build), whoever asks: collector report, whose
// flags build the Request, the JSON API, whose query ParseQuery reads the
// same way, or code such as the live table.
// collector export streams the raw rows of a table. Both commands open the
// database read-only and read through the store's queries, which take no
// lock, so they run beside the daemon without holding it up.
package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/traffic"
)

const reportAbout = `Sums the stored traffic over a span of time (today unless told otherwise)
per client, network (IPv4 /24, IPv6 /48), class or calendar period. Times
are local; rates are averages over the time each row covers. Where
retention has kept only hourly or daily rows, a span's ends are resolved to
whole hours or days.`

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
	roles              []string
	top, billingDay    int
}

// newReportCommand defines report's settings: collector report's flags,
// and ParseQuery's parameters. billingDay is the day billing periods start
// on unless -billing-day says otherwise, 0 for none.
func newReportCommand(stdout io.Writer, e env, billingDay int) (*command, *reportFlags) {
	c := newCommand("report", reportAbout, stdout, e)
	f := &reportFlags{billingDay: billingDay}
	c.choice(&f.by, "by", string(ByClient), "one row per", byNames...)
	c.choice(&f.format, "format", "table", "output", "table", "csv", "json")
	c.choice(&f.period, "period", "today", "the span, unless -since is given", periodNames...)
	c.number(&f.top, "top", "only the N busiest clients or prefixes (default all)", "a number of rows, 0 for all", 0, 1<<30)
	c.number(&f.billingDay, "billing-day", "day of the month billing periods start on; alone it means -period billing", "a day of the month, 1 to 31", 1, 31)
	c.fs.Func("class", "only these classes, comma-separated: consensus, siamux, quic (default all)", func(v string) (err error) {
		f.classes, err = ParseClasses(v)
		return err
	})
	c.fs.Func("role", "only clients of these roles over the span, comma-separated, as -by role names them: renter, consensus, peer-in+consensus, ... (reports by client and role; default all)", func(v string) (err error) {
		f.roles, err = ParseRoles(v)
		return err
	})
	return c, f
}

func report(ctx context.Context, args []string, stdout io.Writer, e env) error {
	c, f := newReportCommand(stdout, e, 0)
	if ok, err := c.parse(args); !ok {
		return err
	}
	req, err := reportRequest(c, f)
	if err != nil {
		return err
	}
	st, settings, err := c.open()
	if err != nil {
		return err
	}
	defer st.Close()
	req.Egress = &EgressAsk{Pricing: settings.Egress}
	if settings.HostdPassword != "" {
		// The egress price hostd's periods were stored with, as the
		// daemon's API uses it.
		req.Egress.Prices = st
	}
	res, err := Build(ctx, st, req)
	if err != nil {
		return err
	}
	res.WithQuotas(alert.Quota{Up: settings.QuotaUp, Down: settings.QuotaDown, Total: settings.QuotaTotal})
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
	if f.top > 0 && !By(f.by).ranked() {
		return Request{}, fmt.Errorf("%s applies to %s client and prefix", c.name("top"), c.name("by"))
	}
	if len(f.roles) > 0 && f.by != string(ByClient) && f.by != string(ByRole) {
		return Request{}, fmt.Errorf("%s applies to %s client and role", c.name("role"), c.name("by"))
	}
	return Request{Span: sp, By: By(f.by), Classes: f.classes, Top: f.top, Clients: c.clients, Roles: f.roles, Now: c.env.now}, nil
}

// reportSpan decides the span from -period, -billing-day, -since and
// -until.
func reportSpan(c *command, f *reportFlags) (Span, error) {
	byRange := c.set("since") || c.set("until")
	switch {
	case byRange && (c.set("period") || c.set("billing-day")):
		return Span{}, fmt.Errorf("%s/%s exclude %s and %s", c.name("since"), c.name("until"), c.name("period"), c.name("billing-day"))
	case byRange && !c.since.Before(c.env.now):
		return Span{}, fmt.Errorf("%s %s is not in the past", c.name("since"), c.since.Format(time.RFC3339))
	case byRange:
		return RangeSpan(c.since, c.until, c.env.now), nil
	case c.set("billing-day") && !c.set("period"):
		f.period = "billing"
	case c.set("billing-day") && !isBilling(f.period):
		return Span{}, fmt.Errorf("%s applies to %s billing and last-billing", c.name("billing-day"), c.name("period"))
	case isBilling(f.period) && f.billingDay == 0:
		return Span{}, fmt.Errorf("%s %s needs %s", c.name("period"), f.period, c.name("billing-day"))
	}
	return PeriodSpan(f.period, c.env.now, f.billingDay)
}
