// Package cost says what the host's egress costs the operator and what it
// is worth at hostd's egress price, per client and billing period: the
// provider's price and allowance (EGRESS_COST_PER_TB, EGRESS_FREE_BYTES)
// shared out over the clients, the 95th-percentile rate providers bill
// by, and the period's totals projected to its end.
//
// Egress, for the provider, is every byte the host sends: the up bytes of
// every class (consensus, siamux, quic), L2 frames as collector counts
// them. It knows nothing of the database: callers hand it the bytes.
package cost

import (
	"math"
	"slices"
	"time"
)

// TB is what a price per TB is per: 10^12 bytes, as providers and hostd
// count.
const TB = 1e12

// Pricing is what the operator's provider charges for egress.
type Pricing struct {
	// PerTB is the provider's price per TB (10^12 bytes) sent beyond the
	// allowance, in the operator's currency (EGRESS_COST_PER_TB); 0 sets
	// no cost.
	PerTB float64
	// FreeBytes is what the provider lets the host send free in a
	// billing period (EGRESS_FREE_BYTES).
	FreeBytes uint64
	// SiacoinPrice is the value of one siacoin in PerTB's currency
	// (SIACOIN_PRICE), which turns hostd's price, in siacoins, into
	// that currency for the margin; 0: unknown, and so is the margin.
	SiacoinPrice float64
}

// Set reports whether p charges anything.
func (p Pricing) Set() bool { return p.PerTB > 0 }

// Bill is what the host's egress in one billing period costs.
type Bill struct {
	// HostBytes are the host's egress bytes in the period, every client
	// and class.
	HostBytes uint64
	// FreeBytes is the allowance, BillableBytes what is beyond it:
	// max(0, HostBytes - FreeBytes).
	FreeBytes, BillableBytes uint64
	// Cost is BillableBytes at the provider's price.
	Cost float64
}

// Bill returns what hostBytes of egress in one billing period cost.
func (p Pricing) Bill(hostBytes uint64) Bill {
	b := Bill{HostBytes: hostBytes, FreeBytes: p.FreeBytes}
	if hostBytes > p.FreeBytes {
		b.BillableBytes = hostBytes - p.FreeBytes
	}
	b.Cost = float64(b.BillableBytes) / TB * p.PerTB
	return b
}

// CostOf returns a client's share of the bill: its share of the host's
// egress times the cost. The allowance is shared the same way, so every
// byte costs the same whoever sent it, and the clients' costs add up to
// the bill.
func (b Bill) CostOf(clientBytes uint64) float64 {
	if b.HostBytes == 0 {
		return 0
	}
	return b.Cost * float64(clientBytes) / float64(b.HostBytes)
}

// Figure is an amount that may be unknown, such as a value without
// hostd's price: unknown is never shown as 0.
type Figure struct {
	Amount float64
	Known  bool
}

// Known returns a known Figure of amount.
func Known(amount float64) Figure { return Figure{Amount: amount, Known: true} }

// Worth is what egress earns at hostd's price and what is left of it
// after its cost.
type Worth struct {
	// ValueSC is the bytes at hostd's egress price, in siacoins.
	ValueSC Figure
	// Margin is the value in the cost's currency (through SiacoinPrice)
	// less the cost.
	Margin Figure
}

// WorthOf returns what bytes, which cost cost, are worth at priceSCPerTB
// (known or not).
func (p Pricing) WorthOf(bytes uint64, cost float64, priceSCPerTB Figure) Worth {
	var w Worth
	if !priceSCPerTB.Known {
		return w
	}
	w.ValueSC = Known(float64(bytes) / TB * priceSCPerTB.Amount)
	if p.SiacoinPrice > 0 {
		w.Margin = Known(w.ValueSC.Amount*p.SiacoinPrice - cost)
	}
	return w
}

// PriceSource gives hostd's egress price at a time, in siacoins per TB;
// ok is false when it is not known (hostd not read, or not yet). The
// hostd reader is one.
type PriceSource interface {
	EgressPrice(at time.Time) (scPerTB float64, ok bool)
}

// PriceAt reads src's price at t; a nil src knows none.
func PriceAt(src PriceSource, t time.Time) Figure {
	if src == nil {
		return Figure{}
	}
	price, ok := src.EgressPrice(t)
	return Figure{Amount: price, Known: ok}
}

// Slot is the length of the samples a 95th-percentile rate is taken over,
// as providers bill.
const Slot = 5 * time.Minute

// Percentile95 returns the 95th-percentile rate, in bits a second, of
// the bytes sent in each 5-minute slot: the slots sorted by their bytes,
// the one at rank ceil(0.95 n) (the top 5% of slots are free), its bytes
// over its 300 seconds. A slot with nothing sent is a sample of 0. No
// samples give 0.
func Percentile95(slots []uint64) float64 {
	if len(slots) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(slots))
	rank := int(math.Ceil(0.95 * float64(len(sorted))))
	return float64(sorted[rank-1]) * 8 / Slot.Seconds()
}
