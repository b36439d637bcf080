package report

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/store"
	"github.com/back2basic/collector/traffic"
)

// busyEvents are 120 minutes of egress in as many 5-minute slots from
// March 2, each client's bytes different in each, so that the 95th
// percentile of the billing period falls among them.
func busyEvents() []event {
	var out []event
	for i := range 120 {
		m := time.Date(2026, 3, 2, 0, 0, 0, 0, berlin).Add(time.Duration(i)*5*time.Minute + time.Duration(i%5)*time.Minute)
		n := uint64(i*7919%1000 + 1)
		out = append(out, event{m, []traffic.Sample{
			{Client: renter, Traffic: classTraffic(traffic.Siamux, n<<10, n<<20)},
			{Client: peer, Traffic: classTraffic(traffic.Consensus, n<<12, n<<14)},
			{Client: unnamed, Traffic: classTraffic(traffic.QUIC, 1<<10, (121-uint64(i))<<18)},
		}})
	}
	return out
}

// priceAt is hostd's egress price, the same at every time.
type priceAt float64

func (p priceAt) EgressPrice(time.Time) (float64, bool) { return float64(p), true }

// egressByHand is what the tests compute from the database with SQL of
// their own, for the billing period [start, end) at now.
type egressByHand struct {
	clients map[string]uint64 // up bytes, every class
	host    uint64
	down    uint64
	// slots are every whole 5-minute slot from sampled, the start or
	// the first slot the database covers (egress_since), to now.
	sampled time.Time
	slots   []uint64
}

func readByHand(t *testing.T, path string, start, now time.Time) egressByHand {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var minuteSince int64
	if err := db.QueryRow("SELECT minute_since FROM rollup_state").Scan(&minuteSince); err != nil {
		t.Fatal(err)
	}
	if minuteSince > start.Unix() {
		t.Fatalf("minute rows kept from %d, after the period's start: the SQL below would miss rows", minuteSince)
	}
	h := egressByHand{clients: map[string]uint64{}}
	rows, err := db.Query(`SELECT ip, SUM(consensus_up + siamux_up + quic_up), SUM(consensus_down + siamux_down + quic_down)
		FROM traffic WHERE timestamp >= ? AND timestamp < ? GROUP BY ip`, start.Unix(), now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ip string
		var up, down uint64
		if err := rows.Scan(&ip, &up, &down); err != nil {
			t.Fatal(err)
		}
		h.clients[ip], h.host, h.down = up, h.host+up, h.down+down
	}
	rows.Close()
	var covered int64
	if err := db.QueryRow("SELECT timestamp FROM egress_since").Scan(&covered); err != nil {
		t.Fatal(err)
	}
	h.sampled = time.Unix(max(covered, start.Unix()), 0)
	h.slots = make([]uint64, (now.Unix()-h.sampled.Unix())/300)
	rows, err = db.Query(`SELECT timestamp / 300, SUM(consensus_up + siamux_up + quic_up) FROM traffic
		WHERE timestamp >= ? AND timestamp < ? GROUP BY timestamp / 300`, h.sampled.Unix(), now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var slot int64
		var up uint64
		if err := rows.Scan(&slot, &up); err != nil {
			t.Fatal(err)
		}
		h.slots[slot-h.sampled.Unix()/300] = up
	}
	return h
}

// busyBilling stores busyEvents and builds req of the billing period
// starting on the 1st, at now; it returns the file's path, the span and
// the report.
func busyBilling(t *testing.T, req Request) (string, Span, *Result) {
	t.Helper()
	path := fixtureOf(t, busyEvents())
	st, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	req.Span, err = PeriodSpan("billing", now, 1)
	if err != nil {
		t.Fatal(err)
	}
	req.Now = now
	res, err := Build(t.Context(), st, req)
	if err != nil {
		t.Fatal(err)
	}
	return path, req.Span, res
}

// p95ByHand drops the busiest 5% of slots (rounded down) and takes the
// busiest left, in bits a second.
func p95ByHand(slots []uint64) float64 {
	sorted := slices.Sorted(slices.Values(slots))
	slices.Reverse(sorted)
	return float64(sorted[len(sorted)*5/100]) * 8 / 300
}

// Every figure of a billing period's egress, as the report's JSON writes
// it, equals what SQL of the test's own makes of the database.
func TestEgressByHand(t *testing.T) {
	pricing := cost.Pricing{PerTB: 2.5, FreeBytes: 1e9, SiacoinPrice: 0.004}
	path, span, res := busyBilling(t, Request{By: ByClient, Top: 2, Egress: &EgressAsk{Pricing: pricing, Prices: priceAt(150)}})
	var out bytes.Buffer
	if err := res.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rows   []map[string]any
		Rest   map[string]any
		Total  map[string]any
		Egress map[string]any
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}

	h := readByHand(t, path, span.Since, now)
	billable := float64(h.host) - 1e9
	hostCost := billable / 1e12 * 2.5
	if billable <= 0 || len(h.clients) != 3 {
		t.Fatalf("%d bytes sent by %d clients; the test lost its point", h.host, len(h.clients))
	}
	check := func(what string, got any, want float64) {
		t.Helper()
		g, ok := got.(float64)
		if !ok || math.Abs(g-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, by hand %v", what, got, want)
		}
	}
	costOf := func(up uint64) (c, value, margin float64) {
		c = hostCost * float64(up) / float64(h.host)
		value = float64(up) / 1e12 * 150
		return c, value, value*0.004 - c
	}
	rest := h.host
	for _, r := range doc.Rows {
		up := h.clients[r["ip"].(string)]
		rest -= up
		c, value, margin := costOf(up)
		check(r["ip"].(string)+" egress_bytes", r["egress_bytes"], float64(up))
		check(r["ip"].(string)+" cost", r["cost"], c)
		check(r["ip"].(string)+" value_sc", r["value_sc"], value)
		check(r["ip"].(string)+" margin", r["margin"], margin)
	}
	c, value, margin := costOf(rest)
	check("rest cost", doc.Rest["cost"], c)
	check("rest value_sc", doc.Rest["value_sc"], value)
	check("rest margin", doc.Rest["margin"], margin)
	check("total cost", doc.Total["cost"], hostCost)

	e := doc.Egress
	check("bytes", e["bytes"], float64(h.host))
	check("billable_bytes", e["billable_bytes"], billable)
	check("cost", e["cost"], hostCost)
	_, value, margin = costOf(h.host)
	check("value_sc", e["value_sc"], value)
	check("margin", e["margin"], margin)
	check("samples", e["samples"], float64(len(h.slots)))
	check("percentile95_bits_per_second", e["percentile95_bits_per_second"], p95ByHand(h.slots))
	if p95ByHand(h.slots) == 0 {
		t.Error("the 95th percentile by hand is 0; the test lost its point")
	}
	// March 2026 in Berlin: 31 days less the hour summer time takes.
	whole, passed := span.Until.Sub(span.Since).Seconds(), now.Sub(span.Since).Seconds()
	check("projected_up_bytes", e["projected_up_bytes"], math.Round(float64(h.host)*whole/passed))
	check("projected_down_bytes", e["projected_down_bytes"], math.Round(float64(h.down)*whole/passed))
	check("projected_cost", e["projected_cost"], (math.Round(float64(h.host)*whole/passed)-1e9)/1e12*2.5)
	// The traffic began on March 2, and so did the samples.
	if want := time.Date(2026, 3, 2, 0, 0, 0, 0, berlin); !h.sampled.Equal(want) || e["sampled_from"] != want.Format(time.RFC3339) {
		t.Errorf("sampled from %v, by hand from %v; want %v", e["sampled_from"], h.sampled, want)
	}
	if e["projected_to"] != span.Until.Format(time.RFC3339) {
		t.Errorf("projected to %v, want the period's end %v", e["projected_to"], span.Until)
	}
}

// Without hostd's price, value and margin are unknown: null in JSON, empty
// in CSV, "—" in the table; never 0.
func TestEgressWithoutPrice(t *testing.T) {
	path, span, res := busyBilling(t, Request{By: ByClient, Egress: &EgressAsk{Pricing: cost.Pricing{PerTB: 2.5, SiacoinPrice: 0.004}}})
	var js, csv, table bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"value_sc": null`, `"margin": null`, `"price_sc_per_tb": null`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON without %s:\n%s", want, js.String())
		}
	}
	if lines := strings.Split(csv.String(), "\n"); !strings.HasSuffix(lines[0], ",egress_bytes,cost,value_sc,margin") || !strings.HasSuffix(lines[1], ",,") {
		t.Errorf("CSV:\n%s", csv.String())
	}
	if !strings.Contains(table.String(), "value — SC, margin —") {
		t.Errorf("table:\n%s", table.String())
	}
	// A report of anything but a billing period has no egress costs.
	st, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err = Build(t.Context(), st, Request{Span: RangeSpan(span.Since, time.Time{}, now), By: ByClient, Now: now,
		Egress: &EgressAsk{Pricing: cost.Pricing{PerTB: 2.5}}})
	if err != nil || res.Egress != nil {
		t.Errorf("a range report has egress %+v (%v)", res.Egress, err)
	}
}
