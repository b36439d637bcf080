package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/back2basic/collector/agg"
)

// The CSV and JSON forms carry raw numbers under names that do not change
// between releases: the key columns of -by, then the counters named as in
// the tables, then these sums and the average rate.
var sumColumns = []string{"bytes_down", "bytes_up", "bytes", "packets", "seconds", "bytes_per_second"}

// machineKeys returns the names of the key columns of -by.
func (res *result) machineKeys() []string {
	switch res.by {
	case "client":
		return []string{"ip", "dns"}
	case "class":
		return []string{"class"}
	}
	return []string{"start", "end"}
}

// machineRow returns the key and values of r, in the order of columns.
func (res *result) machineRow(r row) []any {
	var key []any
	switch res.by {
	case "client":
		key = []any{r.ip, r.dns}
	case "class":
		key = []any{r.class}
	default:
		key = []any{r.start.Format(time.RFC3339), r.end.Format(time.RFC3339)}
	}
	return append(key, values(r)...)
}

func (res *result) columns() []string {
	return append(append(res.machineKeys(), agg.CounterNames()...), sumColumns...)
}

// values returns the counters of r, then sumColumns.
func values(r row) []any {
	var out []any
	for _, v := range agg.Counters(&r.traffic) {
		out = append(out, v)
	}
	down, up := directions(&r.traffic)
	var packets uint64
	for c := range r.traffic {
		for d := range r.traffic[c] {
			packets += r.traffic[c][d].Packets
		}
	}
	seconds := math.Round(r.end.Sub(r.start).Seconds())
	rate := 0.0
	if seconds > 0 {
		rate = math.Round(float64(down+up)/seconds*1000) / 1000
	}
	return append(out, down, up, down+up, packets, int64(seconds), rate)
}

// writeCSV writes a header line and a line per row (RFC 4180); the total
// is left for the reader to sum.
func (res *result) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(res.columns()); err != nil {
		return err
	}
	for _, r := range res.rows {
		if err := cw.Write(csvRecord(res.machineRow(r))); err != nil {
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

// writeJSON writes the report as one JSON document.
func (res *result) writeJSON(w io.Writer) error {
	classes := make([]string, len(res.classes))
	for i, c := range res.classes {
		classes[i] = c.String()
	}
	doc := struct {
		Period  string   `json:"period,omitempty"`
		Since   string   `json:"since"`
		Until   string   `json:"until"`
		Seconds int64    `json:"seconds"`
		By      string   `json:"by"`
		Classes []string `json:"classes"`
		Rows    []object `json:"rows"`
		Total   object   `json:"total"`
	}{
		Period:  res.period,
		Since:   res.since.Format(time.RFC3339),
		Until:   res.until.Format(time.RFC3339),
		Seconds: int64(math.Round(res.until.Sub(res.since).Seconds())),
		By:      res.by,
		Classes: classes,
		Rows:    []object{},
		Total:   object{keys: append(agg.CounterNames(), sumColumns...), values: values(res.total)},
	}
	for _, r := range res.rows {
		doc.Rows = append(doc.Rows, object{keys: res.columns(), values: res.machineRow(r)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
