package hostd

import (
	"math"
	"math/big"
	"time"
)

// Usage is what hostd counted in one 5-minute period: the difference
// between its running totals at the period's end and at the end of the
// period before.
type Usage struct {
	// Start is the period's start.
	Start time.Time
	// RHP is the payload bytes of renter protocol connections.
	RHP Data
	// Syncer is the payload bytes of consensus peers; nil where hostd
	// counted none (before 2.6.0) at either end of the period.
	Syncer *Data
	// EgressRevenue is the earned plus potential egress revenue hostd
	// added in the period, in hastings. hostd moves revenue from potential
	// to earned as a contract succeeds, which leaves the sum as it was,
	// and drops it from potential as a contract fails: a period whose sum
	// fell adds nothing (0), rather than taking the loss from the bytes
	// paid in it.
	EgressRevenue *big.Int
	// EgressPrice is hostd's egress price at the period's end, in
	// hastings per byte.
	EgressPrice *big.Int
}

// Usages turns hostd's running totals of consecutive periods, oldest
// first, into what it counted in each period after the first, which only
// serves as the starting point. A byte total lower than the period
// before's means hostd's metrics started over (a new database): that
// period is left out, as are periods not 5 minutes after the entry
// before, and counting goes on from it. skipped is how many were left out.
func Usages(totals []Metrics) (usages []Usage, skipped int) {
	for i := 1; i < len(totals); i++ {
		prev, cur := &totals[i-1], &totals[i]
		if !cur.Timestamp.Equal(prev.Timestamp.Add(Period)) || fell(prev, cur) {
			skipped++
			continue
		}
		u := Usage{
			Start:         cur.Timestamp,
			RHP:           cur.Data.RHP.minus(prev.Data.RHP),
			EgressRevenue: new(big.Int),
			EgressPrice:   new(big.Int).Set(&cur.Pricing.EgressPrice.Int),
		}
		if prev.Data.Syncer != nil && cur.Data.Syncer != nil {
			s := cur.Data.Syncer.minus(*prev.Data.Syncer)
			u.Syncer = &s
		}
		if added := new(big.Int).Sub(egressRevenue(cur), egressRevenue(prev)); added.Sign() > 0 {
			u.EgressRevenue = added
		}
		usages = append(usages, u)
	}
	return usages, skipped
}

// fell reports whether a byte total of cur is below prev's.
func fell(prev, cur *Metrics) bool {
	if cur.Data.RHP.Ingress < prev.Data.RHP.Ingress || cur.Data.RHP.Egress < prev.Data.RHP.Egress {
		return true
	}
	p, c := prev.Data.Syncer, cur.Data.Syncer
	return p != nil && c != nil && (c.Ingress < p.Ingress || c.Egress < p.Egress)
}

func (d Data) minus(o Data) Data {
	return Data{Ingress: d.Ingress - o.Ingress, Egress: d.Egress - o.Egress}
}

// egressRevenue is m's earned plus potential egress revenue.
func egressRevenue(m *Metrics) *big.Int {
	return new(big.Int).Add(&m.Revenue.Earned.Egress.Int, &m.Revenue.Potential.Egress.Int)
}

// PaidEgress returns the bytes the period's egress revenue pays for at
// its egress price, rounded down, computed exactly. ok is false when the
// price is 0, or the bytes do not fit an int64 (a price of a few hastings
// per byte, which no host sets).
func (u Usage) PaidEgress() (bytes uint64, ok bool) {
	if u.EgressPrice.Sign() <= 0 {
		return 0, false
	}
	q := new(big.Int).Quo(u.EgressRevenue, u.EgressPrice)
	if !q.IsInt64() {
		return 0, false
	}
	return q.Uint64(), true
}

// hastingsPerSC is 10^24: hastings in one siacoin.
var hastingsPerSC = new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil)

// SCPerTB converts a price in hastings per byte to siacoin per terabyte
// (10^12 bytes), the unit hostd's UI shows.
func SCPerTB(hastingsPerByte *big.Int) float64 {
	perTB := new(big.Int).Mul(hastingsPerByte, big.NewInt(1e12))
	f, _ := new(big.Rat).SetFrac(perTB, hastingsPerSC).Float64()
	if math.IsInf(f, 0) {
		return math.MaxFloat64
	}
	return f
}
