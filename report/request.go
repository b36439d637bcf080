package report

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// By is what a report has one row per.
type By string

// The keys of a report's rows. By client, the busiest come first, and
// those past Request.Top are summed in Result.Rest; by prefix, the same
// for networks, each client counted in its IPv4 /24 or IPv6 /48 and
// traffic.Other in a row of its own; by role, each client counted under
// its role over the span (store.Roles), the busiest role first; by class,
// the classes asked for come in order; by hour, day, week (ISO, from Monday) or month, the calendar
// is Request.Now's location and empty periods have rows too.
const (
	ByClient By = "client"
	ByPrefix By = "prefix"
	ByClass  By = "class"
	ByRole   By = "role"
	ByHour   By = "hour"
	ByDay    By = "day"
	ByWeek   By = "week"
	ByMonth  By = "month"
)

// byNames are the values of By, in the order help and errors list them.
var byNames = []string{string(ByClient), string(ByPrefix), string(ByRole), string(ByClass), string(ByHour), string(ByDay), string(ByWeek), string(ByMonth)}

// rankedNouns name, in the plural, the rows of the reports whose rows are
// ranked, busiest first, and cut by Request.Top.
var rankedNouns = map[By]string{ByClient: "clients", ByPrefix: "prefixes"}

// ranked reports whether the rows of b are ranked and cut by Request.Top.
func (b By) ranked() bool { return rankedNouns[b] != "" }

// Request is what a report is asked: collector report builds it from its
// flags, other callers in code.
type Request struct {
	// Span is the time summed: see PeriodSpan and RangeSpan.
	Span Span
	By   By
	// Classes are the classes counted, in any order; none means every
	// class.
	Classes []traffic.Class
	// Top keeps only the Top busiest rows of a report by client or
	// prefix, the others summed in one; 0 keeps every row.
	Top int
	// Clients limits the report to these clients; none means every client.
	Clients []traffic.Client
	// Roles limits a report by client or role to the clients of these
	// roles over the span (store.Roles); none means every role.
	Roles []string
	// Now is the time the report is made at, time.Now() when zero: a span
	// reaching it ends there. Its location is the calendar's.
	Now time.Time
	// Egress, in a report of a billing period, asks what its egress
	// costs and earns (Result.Egress); nil asks nothing.
	Egress *EgressAsk
	// MaxRows, when above zero, is the most rows the report may have:
	// periods by hour, day, week or month, clients or prefixes whatever
	// Top is. Build refuses a larger report with a *TooManyRowsError
	// before it is made. Servers set it, so that no one request takes
	// the memory of years by hour or of a flood's clients.
	MaxRows int
}

// TooManyRowsError is a report that would have more than Request.MaxRows
// rows. Its message says how to ask for fewer in the parameters of
// ParseQuery, which is where a request with MaxRows comes from.
type TooManyRowsError struct {
	MaxRows int
	By      By
}

func (e *TooManyRowsError) Error() string {
	narrower := map[By]string{
		ByHour:  "a later since= or by=day",
		ByDay:   "a later since= or by=week",
		ByWeek:  "a later since= or by=month",
		ByMonth: "a later since=",
	}[e.By]
	noun := string(e.By) + "s"
	if e.By.ranked() {
		noun = rankedNouns[e.By]
		narrower = fmt.Sprintf("top=N (N up to %d), a later since= or client=", e.MaxRows)
	}
	return fmt.Sprintf("more than %d %s in this span, the most one answer holds; ask for %s", e.MaxRows, noun, narrower)
}

// normal returns r with its defaults filled in and its classes sorted
// without repeats, or why r cannot be answered.
func (r Request) normal() (Request, error) {
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if !slices.Contains(byNames, string(r.By)) {
		return r, fmt.Errorf("by %q: accepted: %s", r.By, strings.Join(byNames, ", "))
	}
	if r.MaxRows < 0 {
		return r, errors.New("MaxRows is a number of rows, 0 for any")
	}
	if r.Top < 0 || r.Top > 0 && !r.By.ranked() {
		return r, errors.New("top is a number of rows, for a report by client or prefix")
	}
	if len(r.Roles) > 0 && r.By != ByClient && r.By != ByRole {
		return r, errors.New("a filter by role applies to reports by client and role")
	}
	if !r.Span.Since.Before(r.Span.Until) {
		return r, fmt.Errorf("span from %s to %s is empty", r.Span.Since.Format(time.RFC3339), r.Span.Until.Format(time.RFC3339))
	}
	if len(r.Classes) == 0 {
		r.Classes = traffic.Classes()
	}
	for _, c := range r.Classes {
		if c < 0 || c >= traffic.NumClasses {
			return r, fmt.Errorf("no class %d", c)
		}
	}
	r.Classes = slices.Compact(slices.Sorted(slices.Values(r.Classes)))
	return r, nil
}

// ParseClasses reads class names, comma-separated, in any order:
// consensus, siamux, quic.
func ParseClasses(v string) ([]traffic.Class, error) {
	var out []traffic.Class
	for name := range strings.SplitSeq(v, ",") {
		c, err := traffic.ParseClass(strings.TrimSpace(name))
		if err != nil {
			return nil, errors.New("accepted: consensus, siamux, quic, comma-separated")
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseRoles reads roles, comma-separated, each one of store.Roles.
func ParseRoles(v string) ([]string, error) {
	var out []string
	for role := range strings.SplitSeq(v, ",") {
		role = strings.TrimSpace(role)
		if !slices.Contains(store.Roles(), role) {
			return nil, fmt.Errorf("role %q: accepted: %s, comma-separated", role, strings.Join(store.Roles(), ", "))
		}
		out = append(out, role)
	}
	return out, nil
}

// classNames writes classes as ParseClasses reads them.
func classNames(classes []traffic.Class) []string {
	names := make([]string, len(classes))
	for i, c := range classes {
		names[i] = c.String()
	}
	return names
}
