package report

import (
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// agoForm is a time ago in days or weeks, as parseAgo reads it.
var agoForm = regexp.MustCompile(`^\s*(\d+)\s*([dw])$`)

// FuzzParseQuery feeds ParseQuery any query string, as a request's URL
// brings it. It must not panic; a refusal is one line; what it accepts is
// a Request Build takes (a span from before now to after its start), the
// same each time, whose since= of days or weeks ago lies exactly that far
// back. The seed corpus is in testdata/fuzz/FuzzParseQuery, and every go
// test runs it.
func FuzzParseQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string, billingDay int) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return // the server refuses such a URL before it gets here
		}
		req, err := ParseQuery(v, now, billingDay)
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("query %q: error %q is not one line", raw, msg)
			}
			return
		}
		normal, err := req.normal()
		if err != nil {
			t.Fatalf("query %q: accepted, but Build refuses it: %v", raw, err)
		}
		if !normal.Span.Since.Before(now) {
			t.Fatalf("query %q: a span from %s, not before now", raw, normal.Span.Since)
		}
		again, err := ParseQuery(v, now, billingDay)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("query %q: read twice, %+v then %+v, %v", raw, req, again, err)
		}
		if m := agoForm.FindStringSubmatch(v.Get("since")); m != nil {
			n, _ := strconv.ParseFloat(m[1], 64)
			hours := map[string]float64{"d": 24, "w": 7 * 24}[m[2]]
			if got := now.Sub(req.Span.Since).Hours(); got != n*hours {
				t.Fatalf("query %q: since %s is %v hours back, want %v", raw, req.Span.Since.Format(time.RFC3339), got, n*hours)
			}
		}
	})
}
