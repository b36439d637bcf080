package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/back2basic/collector/alert"
	"github.com/back2basic/collector/store"
)

// QuotaShare is how the JSON forms (the report's, the API's alerts)
// write the share of a quota used.
type QuotaShare struct {
	Direction string  `json:"direction"`
	Used      uint64  `json:"used_bytes"`
	Limit     uint64  `json:"quota_bytes"`
	Share     float64 `json:"share"`
	// Projected and ProjectedShare are the period's projection to its
	// end (alert.QuotaUse.Projected).
	Projected      uint64  `json:"projected_bytes"`
	ProjectedShare float64 `json:"projected_share"`
}

// The CSV and JSON forms carry raw numbers under names that do not change
// between releases: the key columns of By, then the counters named as in
// the tables, then these sums and the average rate.
var sumColumns = []string{"bytes_down", "bytes_up", "bytes", "packets", "seconds", "bytes_per_second"}

// machineKeys returns the names of the key columns of By.
func (res *Result) machineKeys() []string {
	switch res.By {
	case ByClient:
		if res.Roles {
			return []string{"ip", "dns", "role"}
		}
		return []string{"ip", "dns"}
	case ByRole:
		return []string{"role", "clients"}
	case ByPrefix:
		return []string{"prefix"}
	case ByClass:
		return []string{"class"}
	}
	return []string{"start", "end"}
}

// machineRow returns the key and values of r, in the order of columns.
func (res *Result) machineRow(r *Row) []any {
	var key []any
	switch res.By {
	case ByClient:
		key = []any{r.Client.String(), r.DNS}
		if res.Roles {
			key = append(key, r.Role)
		}
	case ByRole:
		key = []any{r.Role, int64(r.Clients)}
	case ByPrefix:
		key = []any{r.prefixName()}
	case ByClass:
		key = []any{r.Class.String()}
	default:
		key = []any{r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339)}
	}
	return append(key, res.values(r)...)
}

func (res *Result) columns() []string {
	return append(res.machineKeys(), res.valueColumns()...)
}

// valueColumns are the names of what values gives.
func (res *Result) valueColumns() []string {
	cols := append(store.CounterNames(), sumColumns...)
	if res.Egress != nil {
		cols = append(cols, egressColumns...)
	}
	return cols
}

// values returns the counters of r, then sumColumns, then egressColumns
// in a report with Egress.
func (res *Result) values(r *Row) []any {
	v := values(r)
	if res.Egress != nil {
		v = append(v, res.Egress.machineCost(r)...)
	}
	return v
}

// values returns the counters of r, then sumColumns.
func values(r *Row) []any {
	var out []any
	for _, v := range store.Counters(&r.Traffic) {
		out = append(out, v)
	}
	down, up := directions(&r.Traffic)
	seconds := math.Round(r.End.Sub(r.Start).Seconds())
	rate := 0.0
	if seconds > 0 {
		rate = math.Round(float64(down+up)/seconds*1000) / 1000
	}
	return append(out, down, up, down+up, r.Traffic.Packets(), int64(seconds), rate)
}

// WriteCSV writes a header line and a line per row (RFC 4180); the total
// is left for the reader to sum.
func (res *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(res.columns()); err != nil {
		return err
	}
	for i := range res.Rows {
		if err := cw.Write(csvRecord(res.machineRow(&res.Rows[i]))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvRecord writes values as CSV fields.
func csvRecord(values []any) []string {
	out := make([]string, len(values))
	for i, v := range values {
		switch v := v.(type) {
		case string:
			out[i] = v
		case uint64:
			out[i] = strconv.FormatUint(v, 10)
		case int64:
			out[i] = strconv.FormatInt(v, 10)
		case float64:
			out[i] = strconv.FormatFloat(v, 'f', -1, 64)
		case int:
			out[i] = strconv.Itoa(v)
		}
	}
	return out
}

// object is a JSON object whose keys keep their order.
type object struct {
	keys   []string
	values []any
}

// MarshalJSON writes the keys in their order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(o.values[i])
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Member is a member of a JSON object whose value is a string.
type Member struct{ Name, Value string }

// WriteJSON writes the report as one JSON document: lead first, members a
// caller says beside the report (the API's span name, say), then the
// span, the rows as WriteCSV's columns, the rest when Request.Top left
// rows out, and the total. The rest has the total's keys, then "clients"
// (by client) or "prefixes" (by prefix): how many rows it sums. It is
// left out when no row was, so that a reader can tell the rows are all
// there is. The document is written as it is encoded, a row at a time, so
// that it is never held whole in memory.
func (res *Result) WriteJSON(w io.Writer, lead ...Member) error {
	d := jsonDoc{w: bufio.NewWriter(w)}
	for _, m := range lead {
		d.member(m.Name, m.Value)
	}
	if res.Period != "" {
		d.member("period", res.Period)
	}
	d.member("since", res.Since.Format(time.RFC3339))
	d.member("until", res.Until.Format(time.RFC3339))
	d.member("seconds", int64(math.Round(res.Until.Sub(res.Since).Seconds())))
	d.member("by", res.By)
	d.member("classes", classNames(res.Classes))
	d.name("rows")
	columns := res.columns()
	for i := range res.Rows {
		d.element(i, object{keys: columns, values: res.machineRow(&res.Rows[i])})
	}
	d.endArray(len(res.Rows))
	totalKeys := res.valueColumns()
	if res.RestClients > 0 {
		d.member("rest", object{
			keys:   append(slices.Clone(totalKeys), rankedNouns[res.By]),
			values: append(res.values(&res.Rest), res.RestClients),
		})
	}
	d.member("total", object{keys: totalKeys, values: res.values(&res.Total)})
	if len(res.Quotas) > 0 {
		d.member("quotas", QuotaShares(res.Quotas))
	}
	if res.Egress != nil {
		d.member("egress", res.Egress.machine())
	}
	if res.Hostd != nil {
		d.member("hostd", res.Hostd)
	}
	return d.end()
}

// QuotaShares returns uses as the JSON forms write them, never nil.
func QuotaShares(uses []alert.QuotaUse) []QuotaShare {
	out := make([]QuotaShare, len(uses))
	for i, q := range uses {
		out[i] = QuotaShare{q.Direction, q.Used, q.Limit, ratio(q.Share()), q.Projected, ratio(q.ProjectedShare())}
	}
	return out
}

// ratio rounds a share to four places, as the JSON form writes shares.
func ratio(share float64) float64 { return math.Round(share*1e4) / 1e4 }

// jsonDoc writes one JSON object, member by member, indented by two
// spaces as json.Encoder does with SetIndent("", "  "), escaping as it
// does. The first error sticks, and end returns it.
type jsonDoc struct {
	w       *bufio.Writer
	members int
	err     error
}

// name begins the next member, up to its value.
func (d *jsonDoc) name(name string) {
	sep := ",\n  "
	if d.members == 0 {
		sep = "{\n  "
	}
	d.members++
	d.write(sep)
	d.encode(name, "")
	d.write(": ")
}

// member writes the next member.
func (d *jsonDoc) member(name string, v any) {
	d.name(name)
	d.encode(v, "  ")
}

// element writes the element i of the array that is the value of the
// member just named.
func (d *jsonDoc) element(i int, v any) {
	if i == 0 {
		d.write("[\n    ")
	} else {
		d.write(",\n    ")
	}
	d.encode(v, "    ")
}

// endArray closes the array of n elements that is the value of the
// member just named.
func (d *jsonDoc) endArray(n int) {
	if n == 0 {
		d.write("[]")
	} else {
		d.write("\n  ]")
	}
}

// end closes the object and flushes it.
func (d *jsonDoc) end() error {
	d.write("\n}\n")
	if d.err != nil {
		return d.err
	}
	return d.w.Flush()
}

// encode writes v, its lines after the first beginning with prefix.
func (d *jsonDoc) encode(v any, prefix string) {
	if d.err != nil {
		return
	}
	b, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		d.err = err
		return
	}
	_, d.err = d.w.Write(b)
}

func (d *jsonDoc) write(s string) {
	if d.err == nil {
		_, d.err = d.w.WriteString(s)
	}
}
