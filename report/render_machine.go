package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/back2basic/collector/store"
)

// quota is how the JSON form writes the share of a quota used.
type quota struct {
	Direction string  `json:"direction"`
	Used      uint64  `json:"used_bytes"`
	Limit     uint64  `json:"quota_bytes"`
	Share     float64 `json:"share"`
}

// The CSV and JSON forms carry raw numbers under names that do not change
// between releases: the key columns of By, then the counters named as in
// the tables, then these sums and the average rate.
var sumColumns = []string{"bytes_down", "bytes_up", "bytes", "packets", "seconds", "bytes_per_second"}

// machineKeys returns the names of the key columns of By.
func (res *Result) machineKeys() []string {
	switch res.By {
	case ByClient:
		return []string{"ip", "dns"}
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
	case ByPrefix:
		key = []any{r.prefixName()}
	case ByClass:
		key = []any{r.Class.String()}
	default:
		key = []any{r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339)}
	}
	return append(key, values(r)...)
}

func (res *Result) columns() []string {
	return append(append(res.machineKeys(), store.CounterNames()...), sumColumns...)
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

// WriteJSON writes the report as one JSON document: the span, the rows as
// WriteCSV's columns, the rest when Request.Top left rows out, and the
// total. The rest has the total's keys, then "clients" (by client) or
// "prefixes" (by prefix): how many rows it sums. It is left out when no
// row was, so that a reader can tell the rows are all there is.
func (res *Result) WriteJSON(w io.Writer) error {
	doc := struct {
		Period  string   `json:"period,omitempty"`
		Since   string   `json:"since"`
		Until   string   `json:"until"`
		Seconds int64    `json:"seconds"`
		By      By       `json:"by"`
		Classes []string `json:"classes"`
		Rows    []object `json:"rows"`
		Rest    *object  `json:"rest,omitempty"`
		Total   object   `json:"total"`
		Quotas  []quota  `json:"quotas,omitempty"`
	}{
		Period:  res.Period,
		Since:   res.Since.Format(time.RFC3339),
		Until:   res.Until.Format(time.RFC3339),
		Seconds: int64(math.Round(res.Until.Sub(res.Since).Seconds())),
		By:      res.By,
		Classes: classNames(res.Classes),
		Rows:    []object{},
		Total:   object{keys: append(store.CounterNames(), sumColumns...), values: values(&res.Total)},
	}
	for i := range res.Rows {
		doc.Rows = append(doc.Rows, object{keys: res.columns(), values: res.machineRow(&res.Rows[i])})
	}
	for _, q := range res.Quotas {
		doc.Quotas = append(doc.Quotas, quota{q.Direction, q.Used, q.Limit, math.Round(q.Share()*1e4) / 1e4})
	}
	if res.RestClients > 0 {
		doc.Rest = &object{
			keys:   append(append(store.CounterNames(), sumColumns...), rankedNouns[res.By]),
			values: append(values(&res.Rest), res.RestClients),
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
