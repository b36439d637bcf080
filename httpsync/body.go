package httpsync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// The body is written by hand rather than by encoding/json from a struct,
// so that its keys are the local column names (store.CounterNames), in
// their order, spelled once, and its size has a bound maxRowBytes can
// state.

// maxIPBytes is the longest address a row can name: an IPv6 address
// written with an IPv4 tail, ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.
const maxIPBytes = 45

// maxNumberBytes is the longest number a row holds: a uint64, or a
// negative int64 timestamp.
const maxNumberBytes = 20

// maxRowBytes is the most bytes one row takes in a body, with the comma
// before it.
func maxRowBytes() int {
	n := len(`,{"timestamp":,"ip":""}`) + maxNumberBytes + maxIPBytes
	for _, name := range store.CounterNames() {
		n += len(`,"":`) + len(name) + maxNumberBytes
	}
	return n
}

// appendRow appends r as a JSON object.
func appendRow(b []byte, r *traffic.Row) []byte {
	b = append(b, `{"timestamp":`...)
	b = strconv.AppendInt(b, r.Start.Unix(), 10)
	b = append(b, `,"ip":`...)
	b = strconv.AppendQuote(b, r.Client.String()) // an address or "other": nothing JSON escapes otherwise
	for i, v := range store.Counters(&r.Traffic) {
		b = append(b, `,"`...)
		b = append(b, store.CounterNames()[i]...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, v, 10)
	}
	return append(b, '}')
}

// body is the JSON of one batch: rows of table t of host. Its batch_id is
// a hash of host, table and rows, so that the same batch sent again has
// the same id and a receiver may skip it.
func body(host string, t store.Table, rows []traffic.Row) []byte {
	var list []byte
	list = append(list, '[')
	for i := range rows {
		if i > 0 {
			list = append(list, ',')
		}
		list = appendRow(list, &rows[i])
	}
	list = append(list, ']')

	hostJSON, _ := json.Marshal(host) // a string always encodes
	sum := sha256.New()
	for _, part := range [][]byte{hostJSON, []byte(t.String()), list} {
		sum.Write(part)
		sum.Write([]byte{0})
	}
	id := hex.EncodeToString(sum.Sum(nil)[:16])

	b := make([]byte, 0, envelopeBytes(host)+len(list))
	b = append(b, `{"host":`...)
	b = append(b, hostJSON...)
	b = append(b, `,"table":"`...)
	b = append(b, t.String()...)
	b = append(b, `","batch_id":"`...)
	b = append(b, id...)
	b = append(b, `","rows":`...)
	b = append(b, list...)
	return append(b, '}')
}

// envelopeBytes is the most bytes a body of host takes besides its rows.
func envelopeBytes(host string) int {
	hostJSON, _ := json.Marshal(host)
	return len(`{"host":,"table":"","batch_id":"","rows":[]}`) + len(hostJSON) + len("traffic_minute") + 32
}

// rowsPerBatch is how many rows a batch may carry so that it holds at
// most maxRows rows and maxBytes bytes; 0 when not even one row fits.
func rowsPerBatch(host string, maxRows, maxBytes int) int {
	return min(maxRows, max(0, maxBytes-envelopeBytes(host))/maxRowBytes())
}
