package cost

import (
	"math"
	"testing"
	"time"
)

func TestBill(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		p                    Pricing
		host                 uint64
		billable             uint64
		cost                 float64
		clients, clientCosts []float64
	}{
		// 3 TB sent, 1 TB free, 2 TB at 1.5 = 3.0; a client of 1 TB
		// sent a third, so pays a third.
		{name: "beyond the allowance", p: Pricing{PerTB: 1.5, FreeBytes: 1e12}, host: 3e12, billable: 2e12, cost: 3,
			clients: []float64{1e12, 2e12}, clientCosts: []float64{1, 2}},
		{name: "within the allowance", p: Pricing{PerTB: 1.5, FreeBytes: 5e12}, host: 3e12, billable: 0, cost: 0,
			clients: []float64{3e12}, clientCosts: []float64{0}},
		{name: "no allowance", p: Pricing{PerTB: 2}, host: 5e11, billable: 5e11, cost: 1,
			clients: []float64{1e11, 4e11}, clientCosts: []float64{0.2, 0.8}},
		{name: "nothing sent", p: Pricing{PerTB: 2}, host: 0, billable: 0, cost: 0,
			clients: []float64{0}, clientCosts: []float64{0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.p.Bill(tt.host)
			if b.BillableBytes != tt.billable || !near(b.Cost, tt.cost) {
				t.Errorf("Bill(%d) = %d billable costing %v, want %d costing %v", tt.host, b.BillableBytes, b.Cost, tt.billable, tt.cost)
			}
			sum := 0.0
			for i, c := range tt.clients {
				got := b.CostOf(uint64(c))
				sum += got
				if !near(got, tt.clientCosts[i]) {
					t.Errorf("CostOf(%v) = %v, want %v", c, got, tt.clientCosts[i])
				}
			}
			if !near(sum, b.Cost) {
				t.Errorf("the clients' costs add up to %v, the bill is %v", sum, b.Cost)
			}
		})
	}
}

func TestWorthOf(t *testing.T) {
	// 2 TB at hostd's 100 SC/TB is 200 SC; at 0.004 a siacoin that is
	// 0.8 in the cost's currency, less a cost of 0.5.
	p := Pricing{PerTB: 1, SiacoinPrice: 0.004}
	w := p.WorthOf(2e12, 0.5, Known(100))
	if !w.ValueSC.Known || !near(w.ValueSC.Amount, 200) || !w.Margin.Known || !near(w.Margin.Amount, 0.3) {
		t.Errorf("WorthOf = %+v, want 200 SC and a margin of 0.3", w)
	}
	if w := p.WorthOf(2e12, 0.5, Figure{}); w.ValueSC.Known || w.Margin.Known {
		t.Errorf("without hostd's price WorthOf = %+v, want both unknown", w)
	}
	p.SiacoinPrice = 0
	if w := p.WorthOf(2e12, 0.5, Known(100)); !w.ValueSC.Known || w.Margin.Known {
		t.Errorf("without a siacoin price WorthOf = %+v, want the value known, the margin not", w)
	}
}

type fixedPrice map[time.Time]float64

func (f fixedPrice) EgressPrice(at time.Time) (float64, bool) {
	p, ok := f[at]
	return p, ok
}

func TestPriceAt(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	src := fixedPrice{t0: 150}
	if got := PriceAt(src, t0); got != Known(150) {
		t.Errorf("PriceAt = %+v, want 150 known", got)
	}
	if got := PriceAt(src, t0.Add(time.Hour)); got.Known {
		t.Errorf("PriceAt of a time without a price = %+v, want unknown", got)
	}
	if got := PriceAt(nil, t0); got.Known {
		t.Errorf("PriceAt without a source = %+v, want unknown", got)
	}
}

func TestPercentile95(t *testing.T) {
	// 100 slots of 0..99 MB: the top 5 (95..99) are free, the 95th is
	// 94 MB, 94e6*8/300 bit/s.
	var hundred []uint64
	for i := 99; i >= 0; i-- {
		hundred = append(hundred, uint64(i)*1e6)
	}
	// 20 slots: ceil(19) = the 19th, so only the highest is free.
	twenty := make([]uint64, 20)
	twenty[3], twenty[7] = 3000, 6000
	for _, tt := range []struct {
		name  string
		slots []uint64
		want  float64
	}{
		{"a hundred slots", hundred, 94e6 * 8 / 300},
		{"twenty slots, mostly quiet", twenty, 3000 * 8 / 300},
		{"one slot", []uint64{300}, 8},
		{"none", nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile95(tt.slots); !near(got, tt.want) {
				t.Errorf("Percentile95 = %v, want %v", got, tt.want)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
