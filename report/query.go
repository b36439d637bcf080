package report

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
)

// cliOnly are collector report's flags that say where the database is and
// how to write the answer, which a server decides for itself.
var cliOnly = []string{"config", "sqlite-path", "format"}

// ParseQuery reads a Request from the parameters of a URL's query, as
// collector report does from its flags: the same settings by the same
// names without the dash (period, since, until, by, class, top, client,
// billing-day), read and checked by the same code, so that a query and
// the flags it spells give the same Request. now is the time the report is
// made at, in the calendar's location. billingDay is the day of the month
// billing periods start on when the query gives no billing-day, so that
// period=billing needs none; 0 for none.
//
// A parameter given more than once is refused, where a repeated flag
// counts its last value: in a URL, class=quic&class=siamux looks like a
// list. So are unknown parameters and collector report's flags that do
// not choose the traffic (config, sqlite-path, format). Every error is one
// line naming the parameter.
func ParseQuery(v url.Values, now time.Time, billingDay int) (Request, error) {
	c, f := newReportCommand(io.Discard, env{now: now}, billingDay)
	c.dash = ""
	// In order, so that of several bad parameters the same one is named.
	for _, name := range slices.Sorted(maps.Keys(v)) {
		if err := setParameter(c, name, v[name]); err != nil {
			return Request{}, err
		}
	}
	if err := c.check(); err != nil {
		return Request{}, err
	}
	return reportRequest(c, f)
}

// setParameter sets the flag the parameter name stands for to its one
// value.
func setParameter(c *command, name string, values []string) error {
	switch {
	case slices.Contains(cliOnly, name):
		return fmt.Errorf("parameter %q is a flag of collector report only; accepted: %s", name, strings.Join(parameters(c), ", "))
	case c.fs.Lookup(name) == nil:
		return fmt.Errorf("unknown parameter %q; accepted: %s", name, strings.Join(parameters(c), ", "))
	case len(values) != 1:
		return fmt.Errorf("parameter %s given %d times; it takes one value", name, len(values))
	}
	if err := c.fs.Set(name, values[0]); err != nil {
		return fmt.Errorf("invalid value %q for parameter %s: %w", values[0], name, err)
	}
	return nil
}

// parameters returns the names ParseQuery accepts, in order.
func parameters(c *command) []string {
	var names []string
	c.fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(cliOnly, f.Name) {
			names = append(names, f.Name)
		}
	})
	return names
}
