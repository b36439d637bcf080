package report

import (
	"context"
	"fmt"
	"time"

	"github.com/back2basic/collector/billing"
	"github.com/back2basic/collector/cost"
	"github.com/back2basic/collector/store"
)

// EgressSource is a Source that also keeps the host's egress per 5-minute
// slot, which the cost of a billing period needs; *store.Store is one.
type EgressSource interface {
	Source
	EgressSlots(ctx context.Context, since, until time.Time) (store.EgressSamples, error)
}

// EgressAsk asks a report of a billing period for what its egress costs:
// the provider's pricing, and where hostd's egress price is read (nil: not
// known).
type EgressAsk struct {
	Pricing cost.Pricing
	Prices  cost.PriceSource
}

// Egress is what a billing period's egress costs and earns (package cost),
// in a report of one: for the host and for each row.
type Egress struct {
	Pricing cost.Pricing
	// Bill is the host's egress in the span, every client and class,
	// and its cost.
	Bill cost.Bill
	// PriceSC is hostd's egress price in siacoins per TB at the span's
	// end (now for the period running); Worth the host's egress at it.
	PriceSC cost.Figure
	Worth   cost.Worth
	// Percentile95 is the 95th-percentile rate in bits a second over the
	// 5-minute slots from SampledFrom to SampledTo (Samples of them),
	// which are those of the span the database covers.
	Percentile95           float64
	Samples                int
	SampledFrom, SampledTo time.Time
	// Projected is the host's traffic at the span's end at its rate so far
	// (billing.Period.Project): up, down and both, and the cost of up.
	ProjectedAt                                time.Time
	ProjectedUp, ProjectedDown, ProjectedTotal uint64
	ProjectedCost                              float64
}

// RowCost is a row's egress (its up bytes, of the classes counted), its
// share of the bill, and its worth at hostd's price.
type RowCost struct {
	Bytes uint64
	Cost  float64
	Worth cost.Worth
}

// withEgress adds to res, a report of the billing period req asks, what
// its egress costs, reading the host's totals and slots from src. q is the
// query res was read with.
func withEgress(ctx context.Context, src Source, req Request, q store.Query, res *Result) error {
	es, ok := src.(EgressSource)
	if !ok {
		return fmt.Errorf("the cost of egress needs a source keeping 5-minute egress; %T does not", src)
	}
	// The host's totals are every client's and class's, whatever the
	// report counts.
	q.Clients, q.Limit = nil, 0
	host, err := src.TopClients(ctx, q, -1, nil)
	if err != nil {
		return err
	}
	down, up := directions(&host.Rest)
	ask := req.Egress
	e := &Egress{Pricing: ask.Pricing, Bill: ask.Pricing.Bill(up), PriceSC: cost.PriceAt(ask.Prices, res.Until)}
	e.Worth = ask.Pricing.WorthOf(up, e.Bill.Cost, e.PriceSC)
	samples, err := es.EgressSlots(ctx, res.Since, res.Until)
	if err != nil {
		return err
	}
	e.Percentile95, e.Samples = cost.Percentile95(samples.Slots), len(samples.Slots)
	loc := req.Now.Location()
	e.SampledFrom, e.SampledTo = samples.From.In(loc), samples.To.In(loc)
	period := billing.Period{Start: req.Span.Since, End: req.Span.Until}
	e.ProjectedAt = period.End
	e.ProjectedUp, e.ProjectedDown = period.Project(up, res.Until), period.Project(down, res.Until)
	e.ProjectedTotal = period.Project(up+down, res.Until)
	e.ProjectedCost = ask.Pricing.Bill(e.ProjectedUp).Cost
	res.Egress = e
	return nil
}

// priced reports whether egress has a cost or hostd's price is known: a
// table shows the rows' costs then only.
func (e *Egress) priced() bool { return e.Pricing.Set() || e.PriceSC.Known }

// RowCost returns r's egress, its share of the bill and its worth.
func (e *Egress) RowCost(r *Row) RowCost {
	_, up := directions(&r.Traffic)
	c := e.Bill.CostOf(up)
	return RowCost{Bytes: up, Cost: c, Worth: e.Pricing.WorthOf(up, c, e.PriceSC)}
}

// egressColumns are the names the CSV and JSON forms give a row's
// RowCost, after sumColumns, in a report with Egress; unknown figures are
// empty in CSV and null in JSON.
var egressColumns = []string{"egress_bytes", "cost", "value_sc", "margin"}

// machineCost returns the values of egressColumns for r.
func (e *Egress) machineCost(r *Row) []any {
	c := e.RowCost(r)
	return []any{c.Bytes, c.Cost, figure(c.Worth.ValueSC), figure(c.Worth.Margin)}
}

// figure is f's amount, or nil when unknown: JSON writes null, CSV an
// empty field.
func figure(f cost.Figure) any {
	if !f.Known {
		return nil
	}
	return f.Amount
}

// machine returns e as the JSON form writes it.
func (e *Egress) machine() object {
	o := object{}
	add := func(k string, v any) { o.keys, o.values = append(o.keys, k), append(o.values, v) }
	add("cost_per_tb", e.Pricing.PerTB)
	add("free_bytes", e.Pricing.FreeBytes)
	add("bytes", e.Bill.HostBytes)
	add("billable_bytes", e.Bill.BillableBytes)
	add("cost", e.Bill.Cost)
	add("price_sc_per_tb", figure(e.PriceSC))
	add("siacoin_price", figure(cost.Figure{Amount: e.Pricing.SiacoinPrice, Known: e.Pricing.SiacoinPrice > 0}))
	add("value_sc", figure(e.Worth.ValueSC))
	add("margin", figure(e.Worth.Margin))
	add("percentile95_bits_per_second", e.Percentile95)
	add("samples", e.Samples)
	if e.Samples > 0 {
		add("sampled_from", e.SampledFrom.Format(time.RFC3339))
		add("sampled_to", e.SampledTo.Format(time.RFC3339))
	}
	add("projected_to", e.ProjectedAt.Format(time.RFC3339))
	add("projected_up_bytes", e.ProjectedUp)
	add("projected_down_bytes", e.ProjectedDown)
	add("projected_bytes", e.ProjectedTotal)
	add("projected_cost", e.ProjectedCost)
	return o
}
